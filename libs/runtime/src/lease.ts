import { Logger } from '@nestjs/common';
import { AckPolicy, DeliverPolicy, type ConsumerConfig, type JetStreamManager, type KV, type NatsConnection } from 'nats';
import { LEASED_SERVICES, LEASE_BUCKET } from '@mesh/contracts';
import { messageOf, retry } from '@mesh/common';
import { bucketReplicas } from '@mesh/eventstore/jetstream/replicas';
import { decodeJson, encodeJson } from './json';

/**
 * Leadership of one service among its replicas: only the leader runs the service's durable
 * consumers and its writing timers (scheduler dispatch and liveness); every replica answers
 * requests and keeps its views warm. Held as a lease in the JetStream KV bucket `mesh-leases`.
 */
export interface Leadership {
  /** True while this replica holds a lease it renewed less than the lease time ago. */
  readonly isLeader: boolean;
  /** This replica's instance name (the `<SERVICE>_INSTANCE` setting). */
  readonly instance: string;
  /** Called on every change, in order, one call at a time (a slow listener delays the next change). */
  onChange(listener: (leader: boolean) => void | Promise<void>): void;
  /**
   * Gives the leadership up (the leader cannot do its work, e.g. its consumers did not start): it
   * stops leading, lets a standby take over at once, and campaigns again only after a whole lease.
   */
  resign(reason: string): Promise<void>;
}

/** For processes that run alone by design (one container-manager per node) and for tests. */
export const ALWAYS_LEADER: Leadership = {
  isLeader: true,
  instance: 'single',
  onChange: () => undefined,
  resign: (reason) => Promise.reject(new Error(`cannot resign a service that runs alone: ${reason}`)),
};

/** What is stored under a service's key. `holder` names one process; `instance` its configured name. */
export interface LeaseRecord {
  holder: string;
  instance: string;
  ttlMs: number;
  /** Written by a leader that stops cleanly: a standby takes it at once. */
  released?: boolean;
  /** The holder is this key's home replica (partitions): nobody takes it over while it lives. */
  home?: boolean;
}

/** The key as last read: revision 0 (no key, or deleted) means nobody holds it. */
export interface LeaseObservation {
  revision: number;
  record?: LeaseRecord;
}

/**
 * `preempt`: the home replica of a partition takes its key from a live holder that is not at home.
 * The holder's next renewal then fails and it stops within its lease; the home replica acts only
 * once a whole lease has passed since it sent the take (see LeaseTerm).
 */
export type LeaseAction = { kind: 'create' } | { kind: 'take'; revision: number; preempt?: boolean } | { kind: 'renew'; revision: number } | { kind: 'wait' };

/** Opening (creating) the bucket at start: the usual JetStream timeout, a few tries. */
const OPEN_TIMEOUT_MS = 10_000;
const OPEN_ATTEMPTS = 5;

/** Shortest and longest lease: below 300 ms a loaded machine misses renewals; above a minute failover is too slow. */
export const LEASE_TTL_MIN_MS = 300;
export const LEASE_TTL_MAX_MS = 60_000;

/**
 * The lease's rules, without I/O (lease.spec.ts). Time is the local monotonic-enough wall clock of
 * this process only: a standby never compares its clock with the leader's. It measures how long the
 * key's revision has stayed unchanged since *it* saw it change; the leader counts its validity from
 * the moment it *sent* its last successful write. The write happened after the send and the standby
 * saw it after it happened, so the standby's deadline is never earlier than the leader's: the old
 * leader has stopped acting (isLeader false) before anyone can take the key. A paused leader that
 * misses this (a GC pause across the whole lease) is caught by the expected versions of the streams.
 */
export class LeaseTerm {
  private seen: LeaseObservation & { sinceMs: number } = { revision: 0, sinceMs: 0 };
  private held?: { revision: number; validUntilMs: number; activeFromMs: number };

  constructor(
    readonly me: { holder: string; instance: string; home?: boolean },
    readonly ttlMs: number,
  ) {
    if (!Number.isInteger(ttlMs) || ttlMs < LEASE_TTL_MIN_MS || ttlMs > LEASE_TTL_MAX_MS) {
      throw new Error(`lease ttlMs: ${ttlMs} is not an integer in ${LEASE_TTL_MIN_MS}..${LEASE_TTL_MAX_MS}`);
    }
  }

  /** A read of the key at `nowMs`. The clock of a record starts when its revision is first seen. */
  observe(observation: LeaseObservation, nowMs: number): void {
    if (observation.revision !== this.seen.revision) this.seen = { ...observation, sinceMs: nowMs };
    // Someone else wrote the key: whatever we held is gone.
    if (this.held && observation.revision !== this.held.revision) this.held = undefined;
  }

  /** What to do now. */
  next(nowMs: number): LeaseAction {
    if (this.holds(nowMs)) return { kind: 'renew', revision: this.held!.revision };
    const { revision, record, sinceMs } = this.seen;
    if (revision === 0 || !record) return { kind: 'create' };
    const ours = record.holder === this.me.holder || record.instance === this.me.instance;
    // Ours: a renewal whose answer was lost, or the previous process of this instance (instance names are unique).
    if (ours || record.released || nowMs - sinceMs >= record.ttlMs) return { kind: 'take', revision };
    // The home replica of a partition takes it back from a live holder that is not at home (one at
    // home is never preempted: two replicas that both claim a home cannot flap).
    if (this.me.home && !record.home) return { kind: 'take', revision, preempt: true };
    return { kind: 'wait' };
  }

  /**
   * A create/take/renew sent at `sentAtMs` was written as `revision`. A preempting take becomes
   * active a whole lease after it was sent: the holder it replaced confirmed its last renewal before
   * this write (or the compare-and-set would have failed), and that renewal was sent earlier still,
   * so that holder has stopped acting by then. A renewal keeps the activation it had.
   */
  won(revision: number, sentAtMs: number, how: 'take' | 'renew' | 'preempt' = 'take'): void {
    const activeFromMs = how === 'renew' && this.held ? this.held.activeFromMs : how === 'preempt' ? sentAtMs + this.ttlMs : sentAtMs;
    this.held = { revision, validUntilMs: sentAtMs + this.ttlMs, activeFromMs };
    this.seen = { revision, record: this.record(), sinceMs: sentAtMs };
  }

  /** A write failed (wrong revision, or no answer): not the leader until a write succeeds. */
  lost(): void {
    this.held = undefined;
  }

  /** Holds the key (renews it), possibly not active yet after a preemption. */
  holds(nowMs: number): boolean {
    return this.held !== undefined && nowMs < this.held.validUntilMs;
  }

  isLeader(nowMs: number): boolean {
    return this.holds(nowMs) && nowMs >= this.held!.activeFromMs;
  }

  /** The record this replica writes. */
  record(released = false): LeaseRecord {
    const { holder, instance, home } = this.me;
    return { holder, instance, ttlMs: this.ttlMs, ...(home ? { home: true } : {}), ...(released ? { released: true } : {}) };
  }
}

/**
 * The lease of one key (the service's name) in `mesh-leases`, driven by a loop: the leader renews
 * every ttl/3 (two chances before it lapses), a standby reads the key every ttl/6. Every write is a
 * KV compare-and-set on the revision it read (create = "no such key"), so two replicas can never
 * both win the same revision. Takeover after a leader dies: at most ttl + ttl/6 + one write.
 */
export class KvLease implements Leadership {
  private readonly log: Logger;
  private readonly term: LeaseTerm;
  private readonly listeners: ((leader: boolean) => void | Promise<void>)[] = [];
  private kv?: KV;
  private announced = false;
  private changes: Promise<void> = Promise.resolve();
  private loop?: Promise<void>;
  private stopped = false;
  private wake?: () => void;
  /** After a resignation: no campaigning before this time. */
  private holdOffUntilMs = 0;
  /** Checks between steps whether the lease lapsed (a renewal that hangs past it). */
  private watchdog?: NodeJS.Timeout;

  constructor(
    private readonly nc: NatsConnection,
    readonly key: string,
    readonly instance: string,
    ttlMs: number,
    /** This replica is the key's home (a partition it takes back from a replica that is not at home). */
    home = false,
  ) {
    this.log = new Logger(`Lease(${key})`);
    this.term = new LeaseTerm({ holder: `${instance}/${process.pid}/${Date.now().toString(36)}`, instance, ...(home ? { home } : {}) }, ttlMs);
  }

  get isLeader(): boolean {
    return this.term.isLeader(Date.now());
  }

  onChange(listener: (leader: boolean) => void | Promise<void>): void {
    this.listeners.push(listener);
  }

  /** Opens the bucket (creating it with as many replicas as the log) and starts campaigning. */
  async start(): Promise<void> {
    const replicas = await bucketReplicas(this.nc);
    // Created (or found) with the usual timeout, a few tries: at start a loaded machine may answer slowly.
    // Then bound again for reads and writes that time out within the lease, so that a hung renewal
    // cannot outlive it unnoticed.
    const opsTimeoutMs = Math.max(250, Math.floor(this.term.ttlMs / 2));
    this.kv = await retry(
      `open ${LEASE_BUCKET}`,
      async () => {
        await this.nc.jetstream({ timeout: OPEN_TIMEOUT_MS }).views.kv(LEASE_BUCKET, { history: 1, replicas, maxValueSize: 1024 });
        return this.nc.jetstream({ timeout: opsTimeoutMs }).views.kv(LEASE_BUCKET, { bindOnly: true });
      },
      { attempts: OPEN_ATTEMPTS, baseDelayMs: 500 },
    );
    // The first decision before returning: a lone replica (or a restart of the leader) leads, with its
    // consumers started, by the time its service says it has started.
    await this.step().catch((err: unknown) => this.log.warn(`lease step failed (tried again): ${messageOf(err)}`));
    this.announce();
    await this.changes;
    this.loop = this.run();
    this.watchdog = setInterval(() => this.announce(), Math.max(50, Math.floor(this.term.ttlMs / 10)));
    this.watchdog.unref();
  }

  async resign(reason: string): Promise<void> {
    const action = this.term.next(Date.now());
    this.log.warn(`${this.instance} resigns the leadership of ${this.key}: ${reason}`);
    this.holdOffUntilMs = Date.now() + this.term.ttlMs;
    this.term.lost();
    this.announce();
    if (action.kind === 'renew') await this.kv?.update(this.key, encodeJson(this.term.record(true)), action.revision).catch(() => undefined);
  }

  /** Stops campaigning; a leader writes its lease released so a standby takes over at once. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.watchdog);
    this.wake?.();
    await this.loop;
    const action = this.term.next(Date.now());
    // Not the leader any more before the key says so: a standby may take a released key at once.
    this.term.lost();
    this.announce();
    await this.changes;
    if (action.kind === 'renew' && this.kv) {
      await this.kv.update(this.key, encodeJson(this.term.record(true)), action.revision).catch(() => undefined);
    }
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      const waitMs = Math.floor(this.term.ttlMs / (this.term.holds(Date.now()) ? 3 : 6));
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, waitMs);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      if (this.stopped) break;
      await this.step().catch((err: unknown) => this.log.warn(`lease step failed (tried again): ${messageOf(err)}`));
      this.announce();
    }
  }

  /**
   * One read-decide-write. A failed compare-and-set means someone wrote the key since we read it
   * (another replica, or our own write whose answer was lost): read again and decide once more, in
   * the same step, so that a renewal that landed unanswered does not flap leadership. A renewal with
   * no answer at all keeps the lease until it lapses (validity counts from the send) and is retried.
   */
  private async step(): Promise<void> {
    const kv = this.kv!;
    if (Date.now() < this.holdOffUntilMs) return;
    for (let round = 0; round < 2; round++) {
      let action = this.term.next(Date.now());
      if (action.kind !== 'renew') {
        const entry = await kv.get(this.key);
        const record = entry && entry.operation === 'PUT' && entry.value.length > 0 ? (decodeJson(entry.value) as LeaseRecord) : undefined;
        this.term.observe({ revision: record ? entry!.revision : 0, record }, Date.now());
        action = this.term.next(Date.now());
      }
      if (action.kind === 'wait') return;
      const sentAtMs = Date.now();
      const value = encodeJson(this.term.record());
      try {
        const revision = action.kind === 'create' ? await kv.create(this.key, value) : await kv.update(this.key, value, action.revision);
        const preempt = action.kind === 'take' && action.preempt === true;
        this.term.won(revision, sentAtMs, action.kind === 'renew' ? 'renew' : preempt ? 'preempt' : 'take');
        if (preempt) this.log.log(`${this.instance} takes its home ${this.key} back; it acts once the lease has passed`);
        return;
      } catch (err) {
        if (action.kind === 'renew' && !/wrong last sequence/i.test(messageOf(err))) {
          this.log.warn(
            `renewal of ${this.key} not confirmed (retried; the lease lapses ${this.term.ttlMs} ms after the last confirmed one): ${messageOf(err)}`,
          );
          return;
        }
        this.term.lost();
      }
    }
  }

  /** Tells the listeners when leadership changed (also when it lapsed between two steps). */
  private announce(): void {
    const leader = this.isLeader;
    if (leader === this.announced) return;
    this.announced = leader;
    this.log.log(`${this.instance} is ${leader ? 'the leader' : 'a standby'} of ${this.key}`);
    for (const listener of this.listeners) {
      this.changes = this.changes.then(async () => {
        try {
          await listener(leader);
        } catch (err) {
          this.log.error(`leadership listener failed: ${messageOf(err)}`);
        }
      });
    }
  }
}

/**
 * A new leader takes over durable consumers whose deliveries went to the replica that died: those
 * would come back only after the ack wait (30 s) and after later messages, out of order. When some
 * deliveries are unacknowledged, the consumer is recreated at its ack floor + 1: everything not
 * acknowledged is delivered again, in log order, at once. Handlers are idempotent (a redelivered
 * event is not applied twice). Only the leader uses the consumer, so nobody else loses deliveries.
 */
export async function rewindUnacked(jsm: JetStreamManager, stream: string, durable: string, config: Partial<ConsumerConfig>): Promise<boolean> {
  const info = await jsm.consumers.info(stream, durable).catch(() => undefined);
  if (!info || info.num_ack_pending === 0) return false;
  await jsm.consumers.delete(stream, durable);
  await jsm.consumers.add(stream, {
    ...config,
    durable_name: durable,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.StartSequence,
    opt_start_seq: info.ack_floor.stream_seq + 1,
  });
  return true;
}

/**
 * Who holds each lease (for `mesh status` and tests): by key, the services' (`ledger`) and their
 * partitions' (`ledger.p0`); keys never written are left out.
 */
export async function readLeases(nc: NatsConnection): Promise<Map<string, LeaseRecord & { revision: number }>> {
  const out = new Map<string, LeaseRecord & { revision: number }>();
  let kv: KV;
  try {
    // Opened, not created: the services create it (with their replicas); none yet means no lease.
    kv = await nc.jetstream().views.kv(LEASE_BUCKET, { bindOnly: true });
  } catch {
    return out;
  }
  const keys: string[] = [];
  for await (const key of await kv.keys()) keys.push(key);
  for (const key of keys.sort()) {
    if (!LEASED_SERVICES.some((service) => key === service || key.startsWith(`${service}.`))) continue;
    const entry = await kv.get(key);
    if (entry && entry.operation === 'PUT' && entry.value.length > 0) out.set(key, { ...(decodeJson(entry.value) as LeaseRecord), revision: entry.revision });
  }
  return out;
}

/** The index of an instance name: `ledger-2` -> 2, `ledger` -> 0 (docs/cluster.md "Partitions"). */
export function instanceIndex(instance: string): number {
  const match = /-(\d{1,6})$/.exec(instance);
  return match ? Number(match[1]) : 0;
}

/** Partition p is at home on the replica with index p mod replicas (a replica with no index: 0). */
export function isHomePartition(partition: number, instance: string, replicas: number): boolean {
  return partition % replicas === instanceIndex(instance) % replicas;
}

/** The key of partition p's lease: `<service>.p<p>` (the permissions let a service write `<service>.>`). */
export const partitionLeaseKey = (service: string, partition: number) => `${service}.p${partition}`;
