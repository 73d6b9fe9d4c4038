import assert from 'node:assert/strict';
import type {
  ContainerEvent,
  ContainerResized,
  ContainerStarted,
  EventData,
  ResourceSampled,
  ScalingDecided,
  ScalingEvent,
  Standing,
  UsageEvent,
} from '@mesh/contracts';
import type { Decider } from '@mesh/eventstore/decider';
import type { ScalingPolicy } from './scaling-policy';

/**
 * Vertical autoscaling of ONE container as a pure decider. The state is what the scaler knows of
 * the container (applied allocation, bounds, a bounded window of samples, throttle cap, the decision
 * waiting to be applied); the facts it folds come from other services' streams (container, usage,
 * standing) plus its own ScalingDecided. A command is "observe this fact at nowMs"; decide folds the
 * fact and answers with at most one ScalingDecided.
 */

export type StartedData = EventData<typeof ContainerStarted>;
export type ResizedData = EventData<typeof ContainerResized>;
export type SampleData = EventData<typeof ResourceSampled>;
export type DecidedData = EventData<typeof ScalingDecided>;
export type ScalingReason = DecidedData['reason'];

/** The wallet's standing as seen by one container (from StandingChanged.to). */
export interface StandingObservedData {
  walletId: string;
  standing: Standing;
}

/** Not a stored event: what a container learns from its wallet's StandingChanged. */
export type StandingObserved = { type: 'StandingObserved'; data: StandingObservedData };

/** What the scaler observes of a container: its lifecycle, its samples, its wallet's standing. */
export type ScalingFact = ContainerEvent | UsageEvent | StandingObserved;

/** What evolve folds: the facts and the scaler's own ScalingDecided. */
export type ScalingFoldedEvent = ScalingFact | ScalingEvent;

/** The scaling decider: its decisions are ScalingDecided only. */
export interface ScalingDecider extends Decider<ContainerScalingState, ScalingCommand, ScalingFoldedEvent> {
  decide: (command: ScalingCommand, state: ContainerScalingState) => ScalingEvent[];
}

/** Free capacity of the container's node beyond what this container already has (undefined: unknown). */
export interface NodeHeadroom {
  cpuMillis?: number;
  memoryBytes?: number;
}

export interface ScalingCommand {
  observe: ScalingFact;
  nowMs: number;
  headroom?: NodeHeadroom;
}

/** One sample as the rules use it: usage in millicores, limits at sampling time. */
export interface WindowSample {
  seq: number;
  usageCpuMillis: number;
  cpuLimitMillis: number;
  memoryBytesMax: number;
  memoryLimitBytes: number;
  windowEndMs: number;
  final: boolean;
}

export interface PendingDecision {
  decisionId: string;
  toCpuMillis: number;
  toMemoryBytes: number;
  decidedAtMs: number;
}

export interface DecisionSummary {
  decisionId: string;
  reason: ScalingReason;
  fromCpuMillis: number;
  toCpuMillis: number;
  fromMemoryBytes: number;
  toMemoryBytes: number;
  basedOnSampleSeqs: number[];
  decidedAtMs: number;
}

export interface ContainerScalingState {
  status: 'unknown' | 'running' | 'stopped';
  containerId: string;
  nodeId: string;
  walletId: string;
  functionId: string;
  cpuMinMillis: number;
  cpuMaxMillis: number;
  /** Applied allocation: from ContainerStarted, then each ContainerResized (the authority). */
  cpuMillis: number;
  memoryBytes: number;
  /** Last samples in seq order, at most policy.windowSamples. */
  window: WindowSample[];
  throttled: boolean;
  /** CPU the container had when the cap came, to give it back on recovery. */
  cpuBeforeThrottleMillis?: number;
  pending?: PendingDecision;
  /** ScalingDecided events in scaling-<containerId>: the next decision is number decisions + 1. */
  decisions: number;
  recentDecisions: DecisionSummary[];
  /** Consecutive samples whose memory peak stayed under the low watermark (at the current limit). */
  memoryLow: { count: number; lastSeq: number; peakBytes: number };
}

export const RECENT_DECISIONS_MAX = 16;

/**
 * Decision n (1-based) of a container, also the ScalingDecided event id. Prefixed: JetStream
 * deduplicates event ids across all streams, and `<containerId>-<n>` is already the sampleId
 * (the ResourceSampled event id) of sample n.
 */
export const decisionIdOf = (containerId: string, n: number) => `scale-${containerId}-${n}`;
const MiB = 1024 * 1024;

export function usageCpuMillisOf(sample: Pick<SampleData, 'cpuNanos' | 'windowStartMs' | 'windowEndMs'>): number | undefined {
  const windowMs = sample.windowEndMs - sample.windowStartMs;
  if (windowMs <= 0) return undefined; // no time, no rate
  // cpuNanos / windowMs = core-ns per ms = millicores x 1000.
  return Math.round(sample.cpuNanos / (windowMs * 1000));
}

export function initialScalingState(): ContainerScalingState {
  return {
    status: 'unknown',
    containerId: '',
    nodeId: '',
    walletId: '',
    functionId: '',
    cpuMinMillis: 1,
    cpuMaxMillis: 1,
    cpuMillis: 0,
    memoryBytes: 0,
    window: [],
    throttled: false,
    decisions: 0,
    recentDecisions: [],
    memoryLow: { count: 0, lastSeq: 0, peakBytes: 0 },
  };
}

const isThrottling = (standing: Standing) => standing === 'overdrawn' || standing === 'suspended';
const roundUpMiB = (bytes: number) => Math.ceil(bytes / MiB) * MiB;
const newestOf = (state: ContainerScalingState) => state.window[state.window.length - 1];

/** True when the sample is already in the window (a redelivery) or too old to matter. */
function isKnownSample(state: ContainerScalingState, seq: number, windowSamples: number): boolean {
  if (state.window.some((s) => s.seq === seq)) return true;
  return state.window.length >= windowSamples && seq < state.window[0].seq;
}

export function scalingDecider(policy: ScalingPolicy): ScalingDecider {
  const evolve = (state: ContainerScalingState, event: ScalingFoldedEvent): ContainerScalingState => {
    switch (event.type) {
      case 'ContainerStarted': {
        if (state.status !== 'unknown') return state; // started once; a replay changes nothing
        const d = event.data;
        return {
          ...state,
          status: 'running',
          containerId: d.containerId,
          nodeId: d.nodeId,
          walletId: d.walletId,
          functionId: d.functionId,
          cpuMinMillis: d.cpuMinMillis,
          cpuMaxMillis: Math.max(d.cpuMaxMillis, d.cpuMinMillis),
          cpuMillis: d.cpuMillis,
          memoryBytes: d.memoryBytes,
        };
      }
      case 'ContainerResized': {
        const d = event.data;
        const memoryChanged = d.toMemoryBytes !== state.memoryBytes;
        return {
          ...state,
          cpuMillis: d.toCpuMillis,
          memoryBytes: d.toMemoryBytes,
          pending: state.pending?.decisionId === d.decisionId ? undefined : state.pending,
          memoryLow: memoryChanged ? { count: 0, lastSeq: 0, peakBytes: 0 } : state.memoryLow,
        };
      }
      case 'ContainerStopped':
        return { ...state, status: 'stopped', pending: undefined };
      case 'ResourceSampled': {
        const d = event.data;
        const usageCpuMillis = usageCpuMillisOf(d);
        if (usageCpuMillis === undefined || isKnownSample(state, d.seq, policy.windowSamples)) return state;
        const sample: WindowSample = {
          seq: d.seq,
          usageCpuMillis,
          cpuLimitMillis: d.cpuLimitMillis,
          memoryBytesMax: d.memoryBytesMax,
          memoryLimitBytes: d.memoryLimitBytes,
          windowEndMs: d.windowEndMs,
          final: d.final,
        };
        const window = [...state.window, sample].sort((a, b) => a.seq - b.seq).slice(-policy.windowSamples);
        const isNewest = newestOf({ ...state, window }) === sample;
        const base = {
          ...state,
          containerId: state.containerId || d.containerId,
          nodeId: state.nodeId || d.nodeId,
          walletId: state.walletId || d.walletId,
          functionId: state.functionId || d.functionId,
        };
        return { ...base, window, memoryLow: isNewest ? nextMemoryLow(state, sample) : state.memoryLow };
      }
      case 'StandingObserved': {
        const throttled = isThrottling(event.data.standing);
        if (throttled === state.throttled) return state;
        return throttled
          ? { ...state, throttled, cpuBeforeThrottleMillis: Math.max(state.cpuMillis, state.pending?.toCpuMillis ?? 0) }
          : { ...state, throttled, cpuBeforeThrottleMillis: undefined };
      }
      case 'ScalingDecided': {
        const d = event.data;
        const summary: DecisionSummary = {
          decisionId: d.decisionId,
          reason: d.reason,
          fromCpuMillis: d.fromCpuMillis,
          toCpuMillis: d.toCpuMillis,
          fromMemoryBytes: d.fromMemoryBytes,
          toMemoryBytes: d.toMemoryBytes,
          basedOnSampleSeqs: d.basedOnSampleSeqs,
          decidedAtMs: d.decidedAtMs,
        };
        return {
          ...state,
          decisions: state.decisions + 1,
          pending: { decisionId: d.decisionId, toCpuMillis: d.toCpuMillis, toMemoryBytes: d.toMemoryBytes, decidedAtMs: d.decidedAtMs },
          recentDecisions: [...state.recentDecisions, summary].slice(-RECENT_DECISIONS_MAX),
        };
      }
    }
  };

  function nextMemoryLow(state: ContainerScalingState, sample: WindowSample): ContainerScalingState['memoryLow'] {
    const limit = state.memoryBytes;
    const low = limit > 0 && sample.memoryLimitBytes === limit && sample.memoryBytesMax * 100 < limit * policy.memoryLowWatermarkPct;
    if (!low) return { count: 0, lastSeq: sample.seq, peakBytes: 0 };
    const consecutive = state.memoryLow.count > 0 && state.memoryLow.lastSeq === sample.seq - 1;
    return consecutive
      ? { count: state.memoryLow.count + 1, lastSeq: sample.seq, peakBytes: Math.max(state.memoryLow.peakBytes, sample.memoryBytesMax) }
      : { count: 1, lastSeq: sample.seq, peakBytes: sample.memoryBytesMax };
  }

  /** The trailing run of consecutive samples taken at the current CPU limit, newest last. */
  function cpuRun(state: ContainerScalingState): WindowSample[] {
    const run: WindowSample[] = [];
    for (let i = state.window.length - 1; i >= 0; i--) {
      const s = state.window[i];
      if (s.cpuLimitMillis !== state.cpuMillis) break;
      if (run.length && run[0].seq !== s.seq + 1) break;
      run.unshift(s);
    }
    return run;
  }

  interface Target {
    cpuMillis: number;
    memoryBytes: number;
    cpuReason?: ScalingReason;
    memoryReason?: ScalingReason;
    basedOn: number[];
  }

  function bounds(state: ContainerScalingState, headroom: NodeHeadroom | undefined) {
    const ceiling = Math.min(state.cpuMaxMillis, state.throttled ? policy.throttleCapMillis : Infinity);
    const floor = Math.min(state.cpuMinMillis, ceiling);
    // Growth is limited by what the node has left; a negative headroom (overcommitted) means none.
    const upper = Math.max(Math.min(ceiling, state.cpuMillis + Math.max(0, headroom?.cpuMillis ?? Infinity)), Math.min(state.cpuMillis, ceiling));
    return { ceiling, floor, upper };
  }

  const clamp = (value: number, low: number, high: number) => Math.min(Math.max(value, low), high);

  /** CPU rule on the newest sample; `basedOn` are the samples that justify it. */
  function cpuTarget(state: ContainerScalingState, headroom: NodeHeadroom | undefined): Pick<Target, 'cpuMillis' | 'cpuReason' | 'basedOn'> {
    const { floor, upper, ceiling } = bounds(state, headroom);
    const alloc = state.cpuMillis;
    const b = policy.boundaryMillis;
    const run = cpuRun(state);
    const newest = newestOf(state);
    if (state.throttled && alloc > policy.throttleCapMillis) {
      return { cpuMillis: ceiling, cpuReason: 'throttle', basedOn: [newest.seq] };
    }
    const upRun = run.slice(-policy.scaleUpSamples);
    if (upRun.length === policy.scaleUpSamples && upRun.every((s) => s.usageCpuMillis > alloc - b)) {
      const meanUsage = upRun.reduce((sum, s) => sum + s.usageCpuMillis, 0) / upRun.length;
      const peak = Math.max(...upRun.map((s) => s.usageCpuMillis));
      // Proportional: how far above the threshold (at most b when the limit is saturated) times the gain,
      // and at least enough to leave the usage in the stable band (not high, not low).
      const wanted = Math.max(alloc + Math.ceil(policy.scaleUpGain * (meanUsage - (alloc - b))), peak + Math.ceil(1.5 * b));
      const cpuMillis = clamp(wanted, floor, upper);
      if (cpuMillis > alloc) return { cpuMillis, cpuReason: 'scale-up', basedOn: upRun.map((s) => s.seq) };
    }
    const downRun = run.slice(-policy.scaleDownSamples);
    if (downRun.length === policy.scaleDownSamples && downRun.every((s) => s.usageCpuMillis < alloc - 2 * b)) {
      const peak = Math.max(...downRun.map((s) => s.usageCpuMillis));
      const cpuMillis = clamp(peak + Math.ceil(1.5 * b), floor, ceiling);
      if (cpuMillis < alloc) return { cpuMillis, cpuReason: 'scale-down', basedOn: downRun.map((s) => s.seq) };
    }
    // Outside the function's bounds (e.g. bounds changed, or left there by an earlier cap): back in.
    if (alloc < floor) {
      const cpuMillis = clamp(floor, alloc, Math.max(upper, alloc));
      if (cpuMillis > alloc) return { cpuMillis, cpuReason: 'scale-up', basedOn: [newest.seq] };
    }
    if (alloc > ceiling) return { cpuMillis: ceiling, cpuReason: 'scale-down', basedOn: [newest.seq] };
    return { cpuMillis: alloc, basedOn: [] };
  }

  function memoryTarget(state: ContainerScalingState, headroom: NodeHeadroom | undefined): Pick<Target, 'memoryBytes' | 'memoryReason' | 'basedOn'> {
    const limit = state.memoryBytes;
    const newest = newestOf(state);
    if (limit <= 0 || newest.memoryLimitBytes !== limit) return { memoryBytes: limit, basedOn: [] }; // unlimited, or not yet applied
    if (newest.memoryBytesMax * 100 > limit * policy.memoryHighWatermarkPct) {
      const upper = Math.min(policy.memoryMaxBytes, limit + Math.max(0, headroom?.memoryBytes ?? Infinity));
      const memoryBytes = Math.min(roundUpMiB((newest.memoryBytesMax * 100) / policy.memoryTargetPct), upper);
      if (memoryBytes > limit) return { memoryBytes, memoryReason: 'memory-up', basedOn: [newest.seq] };
    }
    if (state.memoryLow.count >= policy.memoryDownSamples) {
      // Slowly: one step of at most memoryDownStepPct, never under what the recent peak needs.
      const step = Math.floor((limit * policy.memoryDownStepPct) / 100);
      const needed = roundUpMiB((state.memoryLow.peakBytes * 100) / policy.memoryTargetPct);
      const memoryBytes = Math.max(limit - step, needed, policy.memoryMinBytes, newest.memoryBytesMax);
      if (memoryBytes < limit) return { memoryBytes, memoryReason: 'memory-down', basedOn: [newest.seq] };
    }
    return { memoryBytes: limit, basedOn: [] };
  }

  function decision(state: ContainerScalingState, target: Target, nowMs: number): ScalingEvent[] {
    if (target.cpuMillis === state.cpuMillis && target.memoryBytes === state.memoryBytes) return [];
    const reason = target.cpuMillis !== state.cpuMillis ? target.cpuReason : target.memoryReason;
    assert(reason !== undefined, `scaling target without a reason for ${state.containerId}`);
    return [
      {
        type: 'ScalingDecided',
        data: {
          decisionId: decisionIdOf(state.containerId, state.decisions + 1),
          containerId: state.containerId,
          nodeId: state.nodeId,
          walletId: state.walletId,
          functionId: state.functionId,
          fromCpuMillis: state.cpuMillis,
          toCpuMillis: target.cpuMillis,
          fromMemoryBytes: state.memoryBytes,
          toMemoryBytes: target.memoryBytes,
          reason,
          basedOnSampleSeqs: [...new Set(target.basedOn)].sort((a, b) => a - b).slice(-64),
          ...(state.throttled ? { throttleCapMillis: policy.throttleCapMillis } : {}),
          decidedAtMs: nowMs,
        },
      },
    ];
  }

  function onSample(before: ContainerScalingState, state: ContainerScalingState, command: ScalingCommand, sample: SampleData): ScalingEvent[] {
    const newest = newestOf(state);
    // Decide from the newest, fresh state only: an old or replayed sample is folded, never acted on.
    if (!newest || newest.seq !== sample.seq || sample.final) return [];
    if (command.nowMs - newest.windowEndMs > policy.sampleMaxAgeMs) return [];
    if (before.pending && command.nowMs - before.pending.decidedAtMs < policy.decisionTimeoutMs) return [];
    const cpu = cpuTarget(state, command.headroom);
    const memory = memoryTarget(state, command.headroom);
    return decision(state, { ...cpu, ...memory, basedOn: [...cpu.basedOn, ...memory.basedOn] }, command.nowMs);
  }

  function onStanding(before: ContainerScalingState, state: ContainerScalingState, command: ScalingCommand): ScalingEvent[] {
    const newest = newestOf(state);
    const basedOn = newest ? [newest.seq] : [];
    // The cap acts at once, whatever is pending: the wallet is paying for every millicore.
    const current = Math.max(state.cpuMillis, state.pending?.toCpuMillis ?? 0);
    if (state.throttled && !before.throttled && current > policy.throttleCapMillis) {
      return decision(state, { cpuMillis: policy.throttleCapMillis, memoryBytes: state.memoryBytes, cpuReason: 'throttle', basedOn }, command.nowMs);
    }
    if (!state.throttled && before.throttled) {
      const { floor, upper } = bounds(state, command.headroom);
      const b = policy.boundaryMillis;
      const restored = before.cpuBeforeThrottleMillis ?? state.cpuMillis;
      const fresh = newest && newest.cpuLimitMillis === state.cpuMillis && command.nowMs - newest.windowEndMs <= policy.sampleMaxAgeMs;
      // Under the cap the usage hides the demand when saturated: give back what it had before.
      const saturated = fresh && newest.usageCpuMillis > state.cpuMillis - b;
      const wanted = !fresh
        ? restored
        : saturated
          ? Math.max(restored, newest.usageCpuMillis + Math.ceil(1.5 * b))
          : newest.usageCpuMillis + Math.ceil(1.5 * b);
      const cpuMillis = clamp(wanted, floor, Math.max(upper, floor));
      return decision(state, { cpuMillis, memoryBytes: state.memoryBytes, cpuReason: 'unthrottle', basedOn }, command.nowMs);
    }
    return [];
  }

  const decide = (command: ScalingCommand, before: ContainerScalingState): ScalingEvent[] => {
    const fact = command.observe;
    if (fact.type === 'ResourceSampled' && isKnownSample(before, fact.data.seq, policy.windowSamples)) return []; // redelivery
    const state = evolve(before, fact);
    if (state.status !== 'running') return [];
    if (fact.type === 'ResourceSampled') return onSample(before, state, command, fact.data);
    if (fact.type === 'StandingObserved') return onStanding(before, state, command);
    return [];
  };

  return { initialState: initialScalingState, evolve, decide };
}

/** Folds the fact of a command and the decisions it produced: the state after the command. */
export function applyCommand(
  decider: ScalingDecider,
  state: ContainerScalingState,
  command: ScalingCommand,
): { state: ContainerScalingState; decisions: ScalingEvent[] } {
  const decisions = decider.decide(command, state);
  let next = decider.evolve(state, command.observe);
  for (const d of decisions) next = decider.evolve(next, d);
  return { state: next, decisions };
}
