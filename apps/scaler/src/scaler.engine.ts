import assert from 'node:assert/strict';
import { Inject, Injectable, Logger, Optional } from '@nestjs/common';
import {
  DomainError,
  ScalingDecided,
  StandingChanged,
  containerEvents,
  isEvent,
  isEventOf,
  nodeEvents,
  streamName,
  type NodeHeartbeat,
  type RecordedContainerEvent,
  type RecordedEvent,
  type RecordedNodeEvent,
  type RecordedOf,
  type ReplyData,
  type ResourceSampled,
  type ScaledContainer,
  type Standing,
  SCALED_CONTAINERS_REPLY_MAX,
  type scaledContainerDetail,
} from '@mesh/contracts';
import { KeyedMutex, LRUCache } from '@mesh/common';
import { ConcurrencyError, type EventStore } from '@mesh/eventstore';
import { ALWAYS_LEADER, EVENT_STORE, LEADERSHIP, PARTITION_LEASES, type Leadership } from '@mesh/runtime';
import { applyCommand, scalingDecider, type ContainerScalingState, type NodeHeadroom, type ScalingCommand } from './domain/scaling-decider';
import type { ScalingPolicy } from './domain/scaling-policy';

export const SCALING_POLICY = Symbol('SCALING_POLICY');
export const SCALER_LIMITS = Symbol('SCALER_LIMITS');

export interface ScalerLimits {
  containersMax: number;
  heartbeatMaxAgeMs: number;
}

interface Entry {
  state: ContainerScalingState;
  /** Revision of the last container-<id> event folded into state. */
  containerRevision: number;
}

interface NodeView {
  cpuMillis?: number;
  memoryBytes?: number;
  revision: number;
  heartbeat?: NodeHeartbeat & { receivedAtMs: number };
}

/** Stopped containers remembered (so late samples of them are ignored), oldest forgotten first. */
const DEAD_FACTOR = 4;

/**
 * The scaler's in-memory view and the thin glue around the pure decider: per container it loads
 * state from the log on first sight (container, scaling and standing streams), folds each fact
 * under a per-container lock, and appends the decider's ScalingDecided with the expected version
 * of scaling-<containerId>. Everything it keeps is bounded and can be rebuilt from the log.
 */
@Injectable()
export class ScalerEngine {
  private readonly log = new Logger('ScalerEngine');
  private readonly decider;
  private readonly entries = new Map<string, Entry>();
  /** Stopped containers (late samples of them are ignored); the oldest are forgotten first. */
  private readonly dead: LRUCache<string, true>;
  /** Last standing per wallet; the wallets seen longest ago are forgotten first (reloaded from the log when needed). */
  private readonly standings: LRUCache<string, { standing: Standing; revision: number }>;
  private readonly nodes = new Map<string, NodeView>();
  /** Facts of one container never interleave. */
  private readonly locks = new KeyedMutex();
  private full = false;
  /** Injected so the benchmark and tests could drive time; the service uses the wall clock. */
  now: () => number = () => Date.now();

  constructor(
    @Inject(EVENT_STORE) private readonly store: EventStore,
    @Inject(SCALING_POLICY) private readonly policy: ScalingPolicy,
    @Inject(SCALER_LIMITS) private readonly limits: ScalerLimits,
    @Optional() @Inject(LEADERSHIP) leadership: Leadership = ALWAYS_LEADER,
    @Optional() @Inject(PARTITION_LEASES) partitions: readonly Leadership[] = [],
  ) {
    this.decider = scalingDecider(policy);
    // Only the leader consumes. One that leads again after a while forgets what it folded then: it
    // missed the facts of its standby time, so each container is loaded from the log on first sight.
    // (Registered here, before the transport's listener starts the consumers.)
    leadership.onChange((leader) => {
      if (!leader) return;
      this.entries.clear();
      this.standings.clear();
    });
    // Partitioned: a partition gained (failover or a home replica back) holds containers whose
    // facts went to another replica meanwhile; all are loaded again on first sight (the partition
    // of an id is the server's hash, so which entries are in it is not known here).
    for (const partition of partitions) {
      partition.onChange((owned) => {
        if (owned) this.entries.clear();
      });
    }
    this.dead = new LRUCache({ max: limits.containersMax * DEAD_FACTOR });
    this.standings = new LRUCache({ max: limits.containersMax * DEAD_FACTOR });
  }

  // --- facts from the consumers -----------------------------------------------------------------

  async onContainerEvent(event: RecordedContainerEvent): Promise<void> {
    const data = event.data;
    await this.locks.run(data.containerId, async () => {
      if (this.dead.has(data.containerId)) return;
      const entry = this.entries.get(data.containerId);
      if (event.type === 'ContainerStopped') return this.forget(data.containerId);
      if (!entry) {
        await this.load(data.containerId); // reads the stream, this event included
        return;
      }
      if (event.revision <= entry.containerRevision) return; // folded already (load or redelivery)
      if (event.revision > entry.containerRevision + 1) {
        // A gap (an earlier event still being redelivered): rebuild from the stream, keep the samples.
        this.entries.delete(data.containerId);
        const reloaded = await this.load(data.containerId);
        if (reloaded) reloaded.state = { ...reloaded.state, window: entry.state.window, memoryLow: entry.state.memoryLow };
        return;
      }
      await this.run(entry, { observe: event, nowMs: this.now() });
      entry.containerRevision = event.revision;
    });
  }

  async onSample(event: RecordedOf<typeof ResourceSampled>): Promise<void> {
    const sample = event.data;
    await this.locks.run(sample.containerId, async () => {
      if (this.dead.has(sample.containerId)) return;
      const entry = this.entries.get(sample.containerId) ?? (await this.load(sample.containerId));
      if (!entry) return;
      await this.syncStanding(entry);
      await this.run(entry, { observe: { type: event.type, data: sample }, nowMs: this.now(), headroom: this.headroom(entry) });
    });
  }

  async onStanding(event: RecordedOf<typeof StandingChanged>): Promise<void> {
    const data = event.data;
    const known = this.standings.peek(data.walletId);
    if (known && event.revision <= known.revision) return;
    this.rememberStanding(data.walletId, data.to, event.revision);
    const affected = [...this.entries.entries()].filter(([, e]) => e.state.walletId === data.walletId).map(([id]) => id);
    for (const containerId of affected) {
      await this.locks.run(containerId, async () => {
        const entry = this.entries.get(containerId);
        if (entry) await this.syncStanding(entry);
      });
    }
  }

  async onNodeEvent(event: RecordedNodeEvent): Promise<void> {
    if (event.type !== 'NodeRegistered') return;
    const data = event.data;
    const known = this.nodes.get(data.nodeId);
    if (known && event.revision <= known.revision) return;
    this.nodes.set(data.nodeId, { ...known, cpuMillis: data.cpuMillis, memoryBytes: data.memoryBytes, revision: event.revision });
  }

  onHeartbeat(heartbeat: NodeHeartbeat): void {
    const known = this.nodes.get(heartbeat.nodeId);
    if (!known && this.nodes.size >= this.limits.containersMax) return; // bounded: ignore unknown nodes when full
    this.nodes.set(heartbeat.nodeId, { revision: -1, ...known, heartbeat: { ...heartbeat, receivedAtMs: this.now() } });
  }

  // --- queries ------------------------------------------------------------------------------------

  list(filter: { walletId?: string; nodeId?: string }): { containers: ScaledContainer[]; truncated: boolean } {
    const matching = [...this.entries.values()].filter(
      (e) => (!filter.walletId || e.state.walletId === filter.walletId) && (!filter.nodeId || e.state.nodeId === filter.nodeId),
    );
    return {
      containers: matching.slice(0, SCALED_CONTAINERS_REPLY_MAX).map((e) => this.summary(e.state)),
      truncated: matching.length > SCALED_CONTAINERS_REPLY_MAX,
    };
  }

  async detail(containerId: string): Promise<ReplyData<typeof scaledContainerDetail>> {
    const entry = await this.locks.run(containerId, async () =>
      this.dead.has(containerId) ? undefined : (this.entries.get(containerId) ?? (await this.load(containerId))),
    );
    if (!entry) throw new DomainError('unknown_container', `the scaler tracks no running container ${containerId}`);
    const s = entry.state;
    return {
      container: this.summary(s),
      window: s.window.map(({ seq, usageCpuMillis, cpuLimitMillis, memoryBytesMax, memoryLimitBytes, windowEndMs }) => ({
        seq,
        usageCpuMillis,
        cpuLimitMillis,
        memoryBytesMax,
        memoryLimitBytes,
        windowEndMs,
      })),
      recentDecisions: s.recentDecisions,
    };
  }

  private summary(s: ContainerScalingState): ScaledContainer {
    const last = s.window[s.window.length - 1];
    return {
      containerId: s.containerId,
      nodeId: s.nodeId,
      walletId: s.walletId,
      functionId: s.functionId,
      cpuMillis: s.cpuMillis,
      memoryBytes: s.memoryBytes,
      cpuMinMillis: s.cpuMinMillis,
      cpuMaxMillis: s.cpuMaxMillis,
      throttleCapMillis: s.throttled ? this.policy.throttleCapMillis : null,
      lastSampleSeq: last?.seq ?? null,
      lastUsageCpuMillis: last?.usageCpuMillis ?? null,
      lastMemoryBytesMax: last?.memoryBytesMax ?? null,
      pendingDecisionId: s.pending?.decisionId ?? null,
      decisions: s.decisions,
    };
  }

  // --- internals ------------------------------------------------------------------------------------

  /** Folds the command's fact; appends the decision (if any) before the new state counts. */
  private async run(entry: Entry, command: ScalingCommand): Promise<void> {
    const { state, decisions } = applyCommand(this.decider, entry.state, command);
    if (decisions.length > 0) {
      const containerId = entry.state.containerId;
      const expected = entry.state.decisions === 0 ? 'no_stream' : entry.state.decisions - 1;
      try {
        await this.store.append(
          streamName('scaling', containerId),
          decisions.map((d) => ({ id: d.data.decisionId, type: d.type, data: d.data })),
          expected,
        );
      } catch (err) {
        if (!(err instanceof ConcurrencyError)) throw err; // nak: the fact is redelivered and decided again
        // Someone else decided for it (another replica, or our view was behind): reload on the next fact.
        this.log.warn(`scaling-${containerId}: ${err.message}; reloading its state`);
        this.entries.delete(containerId);
        return;
      }
      for (const d of decisions) {
        this.log.debug(
          `${d.data.decisionId}: ${d.data.reason} cpu ${d.data.fromCpuMillis}->${d.data.toCpuMillis} m, memory ${d.data.fromMemoryBytes}->${d.data.toMemoryBytes} B`,
        );
      }
    }
    entry.state = state;
  }

  /** Applies the wallet's known standing to a container whose view of it differs. */
  private async syncStanding(entry: Entry): Promise<void> {
    const known = this.standings.peek(entry.state.walletId);
    if (!known) return;
    const throttled = known.standing === 'overdrawn' || known.standing === 'suspended';
    if (throttled === entry.state.throttled) return;
    await this.run(entry, {
      observe: { type: 'StandingObserved', data: { walletId: entry.state.walletId, standing: known.standing } },
      nowMs: this.now(),
      headroom: this.headroom(entry),
    });
  }

  /** First sight of a container: its state from the log. undefined when not (or no longer) running. */
  private async load(containerId: string): Promise<Entry | undefined> {
    const history = await this.readStream(streamName('container', containerId), (e) => isEventOf(e, containerEvents));
    if (!history.some((e) => e.type === 'ContainerStarted')) return undefined; // its start is not in the log (yet)
    let state = this.decider.initialState();
    const applied = new Set<string>();
    for (const e of history) {
      state = this.decider.evolve(state, e);
      if (e.type === 'ContainerResized') applied.add(e.data.decisionId);
    }
    if (state.status !== 'running') {
      this.forget(containerId);
      return undefined;
    }
    if (this.entries.size >= this.limits.containersMax) {
      if (!this.full) this.log.error(`tracking ${this.entries.size} containers (SCALER_CONTAINERS_MAX): ${containerId} is not scaled`);
      this.full = true;
      return undefined;
    }
    for (const e of await this.readStream(streamName('scaling', containerId), (e) => isEvent(e, ScalingDecided))) {
      state = this.decider.evolve(state, e);
    }
    if (state.pending && applied.has(state.pending.decisionId)) state = { ...state, pending: undefined };
    const standing = await this.standingOf(state.walletId);
    if (standing) state = this.decider.evolve(state, { type: 'StandingObserved', data: { walletId: state.walletId, standing } });
    await this.ensureNode(state.nodeId);
    const entry: Entry = { state, containerRevision: history[history.length - 1].revision };
    this.entries.set(containerId, entry);
    return entry;
  }

  private async standingOf(walletId: string): Promise<Standing | undefined> {
    const known = this.standings.peek(walletId);
    if (known) return known.standing;
    const history = await this.readStream(streamName('standing', walletId), (e) => isEvent(e, StandingChanged));
    const last = history[history.length - 1];
    if (!last) return undefined;
    const standing = last.data.to;
    // The consumer may have moved on meanwhile: keep the newer one.
    const now = this.standings.peek(walletId);
    if (!now || now.revision < last.revision) this.rememberStanding(walletId, standing, last.revision);
    return this.standings.peek(walletId)?.standing ?? standing;
  }

  private async ensureNode(nodeId: string): Promise<void> {
    if (this.nodes.get(nodeId)?.cpuMillis !== undefined) return;
    const history = await this.readStream(streamName('node', nodeId), (e) => isEventOf(e, nodeEvents));
    for (const e of history) await this.onNodeEvent(e);
  }

  /** A stream's events, each of the one category the stream holds (the store refuses any other). */
  private async readStream<E extends RecordedEvent>(stream: string, holds: (event: RecordedEvent) => event is E): Promise<E[]> {
    return (await this.store.read(stream)).map((event) => {
      assert(holds(event), `${stream} holds a ${event.type}`);
      return event;
    });
  }

  /** What the node has left beyond this container's allocation: capacity - max(reported, our sum). */
  private headroom(entry: Entry): NodeHeadroom {
    const node = this.nodes.get(entry.state.nodeId);
    if (!node) return {};
    const beat = node.heartbeat && this.now() - node.heartbeat.receivedAtMs <= this.limits.heartbeatMaxAgeMs ? node.heartbeat : undefined;
    const capacityCpu = beat?.cpuMillis ?? node.cpuMillis;
    const capacityMemory = beat?.memoryBytes ?? node.memoryBytes;
    let ourCpu = 0;
    let ourMemory = 0;
    for (const e of this.entries.values()) {
      if (e.state.nodeId !== entry.state.nodeId || e.state.status !== 'running') continue;
      ourCpu += Math.max(e.state.cpuMillis, e.state.pending?.toCpuMillis ?? 0);
      ourMemory += Math.max(e.state.memoryBytes, e.state.pending?.toMemoryBytes ?? 0);
    }
    return {
      cpuMillis: capacityCpu === undefined ? undefined : capacityCpu - Math.max(ourCpu, beat?.usedCpuMillis ?? 0),
      memoryBytes: capacityMemory === undefined ? undefined : capacityMemory - Math.max(ourMemory, beat?.usedMemoryBytes ?? 0),
    };
  }

  /** Bounded: the wallets seen longest ago are forgotten first (reloaded from the log when needed). */
  private rememberStanding(walletId: string, standing: Standing, revision: number): void {
    this.standings.set(walletId, { standing, revision });
  }

  private forget(containerId: string): void {
    this.entries.delete(containerId);
    this.dead.set(containerId, true);
    this.full = false;
  }
}
