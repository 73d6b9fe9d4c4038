import { headers as natsHeaders, type JetStreamClient } from 'nats';
import { walletEventHash } from '@mesh/audit';
import { EVENTS_PREFIX, GENESIS_HASH, GRC, formatAmount } from '@mesh/contracts';
import { REVISION_HEADER, TYPE_HEADER } from '@mesh/eventstore/jetstream/jetstream-event-store';

/**
 * A synthetic but valid log for the restart tests and `npm run bench restart`: what the five
 * services would write for a stream of tasks (functions, nodes, plans, wallets with sealed hash
 * chains, task lifecycles, samples, charges, debits and their group-committed credits, standings).
 * Every event passes its contract; wallet events link their hash chain (so the ledger loads them).
 * Deterministic for a seed. A few debits can be left without their credit (`uncreditedEvery`), as
 * a crash between the two sides would.
 */
export interface SyntheticEvent {
  stream: string;
  id: string;
  type: string;
  data: Record<string, unknown>;
  revision: number;
}

export interface SyntheticLogOptions {
  seed?: number;
  users?: number;
  functions?: number;
  nodes?: number;
  /** Every n-th debit is left without its credit (0 = none). */
  uncreditedEvery?: number;
  /** Provider credits group this many charges (as the ledger's group commit does). */
  creditBatch?: number;
}

const PROVIDER = 'provider';
const NOW_MS = Date.UTC(2026, 10, 1);

/** Charged (task, container) pairs kept for checks, at the start and at the end of the log each. */
const CHARGED_KEPT = 50;

export class SyntheticLog {
  private rand: () => number;
  private readonly revisions = new Map<string, number>();
  private readonly hashes = new Map<string, string>();
  private readonly balances = new Map<string, bigint>();
  private readonly users: string[];
  private readonly functions: string[];
  private readonly nodes: string[];
  private readonly uncreditedEvery: number;
  private readonly creditBatch: number;
  private pendingCredits: { minor: bigint; charge: Record<string, unknown> }[] = [];
  private tasks = 0;
  private debits = 0;
  private setUp = false;
  private clockMs = NOW_MS;
  /** Charges left uncredited on purpose, by charge id. */
  readonly uncredited: string[] = [];

  constructor(options: SyntheticLogOptions = {}) {
    let state = (options.seed ?? 1) >>> 0 || 1;
    this.rand = () => {
      // xorshift32: deterministic and fast enough for millions of draws.
      state ^= state << 13;
      state ^= state >>> 17;
      state ^= state << 5;
      return (state >>> 0) / 4294967296;
    };
    this.users = Array.from({ length: options.users ?? 20 }, (_, i) => `u${i}`);
    this.functions = Array.from({ length: options.functions ?? 5 }, (_, i) => `fn${i}`);
    this.nodes = Array.from({ length: options.nodes ?? 3 }, (_, i) => `node${i}`);
    this.uncreditedEvery = options.uncreditedEvery ?? 0;
    this.creditBatch = Math.max(1, Math.min(200, options.creditBatch ?? 1));
  }

  private pick<T>(items: T[]): T {
    return items[Math.floor(this.rand() * items.length)];
  }

  private event(stream: string, id: string, type: string, data: Record<string, unknown>): SyntheticEvent {
    const revision = (this.revisions.get(stream) ?? -1) + 1;
    this.revisions.set(stream, revision);
    return { stream, id, type, data, revision };
  }

  /** A wallet event with its balance after and its hash chain link. */
  private wallet(walletId: string, id: string, type: string, delta: bigint, fields: Record<string, unknown>): SyntheticEvent {
    const balance = (this.balances.get(walletId) ?? 0n) + delta;
    this.balances.set(walletId, balance);
    const prevHash = this.hashes.get(walletId) ?? GENESIS_HASH;
    const data: Record<string, unknown> = { walletId, currency: 'GRC', balanceAfter: formatAmount(balance, GRC), ...fields, prevHash };
    const hash = walletEventHash(type, data, prevHash);
    this.hashes.set(walletId, hash);
    return this.event(`wallet-${walletId}`, id, type, { ...data, hash });
  }

  private *setup(): Generator<SyntheticEvent> {
    const policy = { maxDebt: '0.5', minBalance: '0', policy: 'greedy' };
    yield this.event('meter-plan_default', 'plan-default-1', 'PricePlanSet', {
      planId: 'default',
      version: 1,
      currency: 'GRC',
      cpuPerCoreHour: '6',
      memoryPerGibHour: '0',
      perInvocation: '0',
      billing: 'used',
      effectiveFromMs: 0,
    });
    yield this.wallet(PROVIDER, 'open-provider', 'WalletOpened', 0n, { kind: 'provider', ...policy, maxDebt: '0', openedAtMs: NOW_MS });
    for (const u of this.users) {
      yield this.wallet(u, `open-${u}`, 'WalletOpened', 0n, { kind: 'user', ...policy, openedAtMs: NOW_MS });
      yield this.wallet(u, `dep-${u}-0`, 'FundsDeposited', 1_000_000_000_000n, { amount: formatAmount(1_000_000_000_000n, GRC), reference: `ref-${u}-0` });
      yield this.event(`standing-${u}`, `standing-${u}-0`, 'StandingChanged', {
        walletId: u,
        from: null,
        to: 'normal',
        balance: '10000',
        currency: 'GRC',
        ...policy,
        causeEventId: `dep-${u}-0`,
        causeRevision: 1,
        changedAtMs: NOW_MS,
      });
    }
    for (const n of this.nodes) {
      yield this.event(`node-${n}`, `${n}-registered-0`, 'NodeRegistered', {
        nodeId: n,
        cpuMillis: 4000,
        memoryBytes: 8 * 1024 ** 3,
        labels: {},
        registeredAtMs: NOW_MS,
      });
    }
    for (const f of this.functions) yield this.event(`function-${f}`, `${f}-v1`, 'FunctionDeployed', this.spec(f, 1));
  }

  private spec(functionId: string, version: number): Record<string, unknown> {
    return {
      functionId,
      version,
      image: 'mesh-task-base:latest',
      script: 'echo hi',
      cpuMinMillis: 100,
      cpuMaxMillis: 2000,
      cpuInitialMillis: 500,
      memoryBytes: 256 * 1024 ** 2,
      timeoutMs: 60_000,
      network: false,
      maxAttempts: 3,
    };
  }

  private source?: Generator<SyntheticEvent>;

  private *all(): Generator<SyntheticEvent> {
    yield* this.setup();
    for (;;) yield* this.taskCycle();
  }

  /** The next `count` events of the log (the set-up first, then task lifecycles); a later call goes on where this one stopped. */
  *events(count: number): Generator<SyntheticEvent> {
    this.source ??= this.all();
    for (let n = 0; n < count; n++) {
      const next = this.source.next();
      if (next.done) return;
      yield next.value;
    }
  }

  /** The credit of the charges still waiting for their group commit (none when nothing waits). */
  *flush(): Generator<SyntheticEvent> {
    if (this.pendingCredits.length > 0) yield this.flushCredits();
  }

  /** One task from submission to its end, with its samples, charges and postings. */
  private *taskCycle(): Generator<SyntheticEvent> {
    const taskId = `t${this.tasks++}`;
    const walletId = this.pick(this.users);
    const functionId = this.pick(this.functions);
    const stream = `task-${taskId}`;
    const ref = { taskId, functionId, walletId };
    this.clockMs += 1000;
    yield this.event(stream, `${taskId}-submitted`, 'TaskSubmitted', {
      ...ref,
      input: { inline: '' },
      priority: Math.floor(this.rand() * 3),
      maxAttempts: 3,
      submittedAtMs: this.clockMs,
    });
    const r = this.rand();
    if (r < 0.05) return; // left pending
    if (r < 0.08) {
      yield this.event(stream, `${taskId}-cancelled`, 'TaskCancelled', { ...ref, reason: 'cancelled by user' });
      return;
    }
    let attempt = 1;
    for (;;) {
      const nodeId = this.pick(this.nodes);
      const executionId = `${taskId}-${attempt}`;
      yield this.event(stream, `${taskId}-dispatched-${attempt}`, 'TaskDispatched', {
        ...ref,
        attempt,
        executionId,
        nodeId,
        function: this.spec(functionId, 1),
        input: { inline: '' },
        dispatchedAtMs: this.clockMs,
      });
      if (this.rand() < 0.03) return; // left dispatched
      const containerId = `c-${walletId}-${functionId}-${nodeId}`;
      yield this.event(stream, `${taskId}-running-${attempt}`, 'TaskRunning', { ...ref, attempt, executionId, nodeId, containerId });
      if (this.rand() < 0.03) return; // left running
      const samples = 1 + Math.floor(this.rand() * 3);
      for (let s = 0; s < samples; s++) yield* this.sample(containerId, nodeId, walletId, functionId, taskId);
      const end = this.rand();
      if (end < 0.05 && attempt < 3) {
        yield this.event(stream, `${taskId}-requeued-${attempt}`, 'TaskRequeued', { ...ref, attempt, reason: 'node-lost' });
        attempt++;
        continue;
      }
      if (end < 0.1) {
        yield this.event(stream, `${taskId}-failed`, 'TaskFailed', { ...ref, attempt, reason: 'exit 1', exitCode: 1 });
        return;
      }
      yield this.event(stream, `${taskId}-succeeded`, 'TaskSucceeded', {
        ...ref,
        attempt,
        executionId,
        outputRef: { bucket: 'outputs', key: taskId },
        durationMs: 1000 * samples,
      });
      return;
    }
  }

  private containerSeq = new Map<string, number>();
  /** The first and the latest charged (task, container) pairs, CHARGED_KEPT of each (bounded: the bench generates millions). */
  private readonly firstCharged: { taskId: string; containerId: string }[] = [];
  private latestCharged: { taskId: string; containerId: string }[] = [];

  /** Some (task, container) pairs charged so far: the first ones and the latest ones, for checking cost answers. */
  chargedSoFar(): { taskId: string; containerId: string }[] {
    return [...this.firstCharged, ...this.latestCharged];
  }

  private *sample(containerId: string, nodeId: string, walletId: string, functionId: string, taskId: string): Generator<SyntheticEvent> {
    const seq = (this.containerSeq.get(containerId) ?? 0) + 1;
    this.containerSeq.set(containerId, seq);
    const sampleId = `${containerId}-${seq}`;
    const cpuNanos = 1_000_000 + Math.floor(this.rand() * 500_000_000);
    const windowEndMs = this.clockMs + seq * 1000;
    yield this.event(`usage-${containerId}`, sampleId, 'ResourceSampled', {
      sampleId,
      containerId,
      nodeId,
      walletId,
      functionId,
      seq,
      taskId,
      windowStartMs: windowEndMs - 1000,
      windowEndMs,
      cpuNanos,
      memoryBytesAvg: 1024 ** 2,
      memoryBytesMax: 2 * 1024 ** 2,
      cpuLimitMillis: 500,
      memoryLimitBytes: 256 * 1024 ** 2,
      final: false,
    });
    // 6 GRC per core-hour at 8 decimals: cpuNanos * 6e8 / 3.6e12 minor units (truncated; the rest is carried).
    const minor = (BigInt(cpuNanos) * 600_000_000n) / 3_600_000_000_000n + 1n;
    const amount = formatAmount(minor, GRC);
    const chargeId = `ch-${sampleId}`;
    yield this.event(`meter-${containerId}`, chargeId, 'UsageCharged', {
      chargeId,
      containerId,
      walletId,
      providerWalletId: PROVIDER,
      functionId,
      nodeId,
      taskId,
      sampleId,
      sampleSeq: seq,
      windowStartMs: windowEndMs - 1000,
      windowEndMs,
      cpuNanos,
      memoryByteMs: '0',
      planId: 'default',
      planVersion: 1,
      currency: 'GRC',
      amount,
      remainder: '0/1',
    });
    const links = { containerId, functionId, taskId };
    if (this.firstCharged.length < CHARGED_KEPT) this.firstCharged.push({ taskId, containerId });
    else {
      this.latestCharged.push({ taskId, containerId });
      if (this.latestCharged.length > 2 * CHARGED_KEPT) this.latestCharged = this.latestCharged.slice(-CHARGED_KEPT);
    }
    yield this.wallet(walletId, `debit-${chargeId}`, 'UsageDebited', -minor, { amount, chargeId, providerWalletId: PROVIDER, ...links });
    this.debits++;
    if (this.uncreditedEvery > 0 && this.debits % this.uncreditedEvery === 0) {
      this.uncredited.push(chargeId);
      return;
    }
    this.pendingCredits.push({ minor, charge: { chargeId, amount, userWalletId: walletId, ...links } });
    if (this.pendingCredits.length >= this.creditBatch) yield this.flushCredits();
  }

  private flushCredits(): SyntheticEvent {
    const batch = this.pendingCredits;
    this.pendingCredits = [];
    const total = batch.reduce((sum, c) => sum + c.minor, 0n);
    const charges = batch.map((c) => c.charge);
    return this.wallet(PROVIDER, `credit-${String(charges[0].chargeId)}`, 'UsageCredited', total, { amount: formatAmount(total, GRC), charges });
  }
}

/** The subject of an event of `stream` (`<category>-<id>` -> mesh.events.<category>.<id>). */
export function subjectOf(stream: string): string {
  const dash = stream.indexOf('-');
  return `${EVENTS_PREFIX}.${stream.slice(0, dash)}.${stream.slice(dash + 1)}`;
}

/**
 * Publishes events raw, as the store writes them (envelope with the revision in the body,
 * Nats-Msg-Id, Mesh-Type, Mesh-Revision), `inFlight` at a time on one connection (NATS keeps a
 * connection's messages in order, so each stream's revisions arrive in order). Returns the count.
 */
export async function publishRaw(js: JetStreamClient, events: Iterable<SyntheticEvent>, inFlight = 512): Promise<number> {
  const pending = new Set<Promise<unknown>>();
  let count = 0;
  const occurredAt = new Date(NOW_MS).toISOString();
  for (const e of events) {
    const envelope = {
      id: e.id,
      type: e.type,
      stream: e.stream,
      occurredAt,
      schemaVersion: 1,
      correlationId: e.id,
      causationId: e.id,
      data: e.data,
      revision: e.revision,
    };
    const h = natsHeaders();
    h.set('Nats-Msg-Id', e.id);
    h.set(REVISION_HEADER, String(e.revision));
    h.set(TYPE_HEADER, e.type);
    const p: Promise<unknown> = js.publish(subjectOf(e.stream), Buffer.from(JSON.stringify(envelope)), { headers: h }).then(() => pending.delete(p));
    pending.add(p);
    count++;
    if (pending.size >= inFlight) await Promise.race(pending);
  }
  await Promise.all(pending);
  return count;
}
