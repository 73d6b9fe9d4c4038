import {
  creditedChargesOf,
  currencyOf,
  ExecutionFailed,
  formatAmount,
  isEvent,
  isEventOf,
  MessageDeadLettered,
  MessageQuarantined,
  parseAmount,
  ResourceSampled,
  TaskCancelled,
  TaskDispatched,
  TaskFailed,
  TaskRequeued,
  TaskSubmitted,
  TaskSucceeded,
  UsageCharged,
  UsageCredited,
  UsageDebited,
  walletEvents,
  ContainerStarted,
  ContainerStopped,
  type RecordedEvent,
  type TaskInput,
} from '@mesh/contracts';
import type { PoisonMessage } from '@mesh/eventstore';
import { balanceDelta } from '@mesh/audit';

/** One check of the soak: its name, the rule it checks, and what broke it (bounded examples, complete count). */
export interface CheckResult {
  name: CheckName;
  rule: string;
  pass: boolean;
  violations: number;
  examples: string[];
}

export const CHECKS = {
  'tasks-end-once': 'every submitted task has exactly one terminal event (TaskSucceeded, TaskFailed or TaskCancelled)',
  'failures-are-scripts':
    "only a script that exits non-zero by itself fails: every TaskFailed / ExecutionFailed exit-code carries the script's own code, never a platform kill's 137/143",
  'requeues-justified':
    "an attempt requeued for silence ('execution lost ... for N ms', 'did not start ... within N ms') was dispatched at least N ms before: the platform never kills a healthy attempt (whose CPU the tenant pays)",
  'books-balance': 'sum of UsageDebited amounts == sum of the credited charges of UsageCredited == sum of the non-zero UsageCharged amounts',
  'charges-paired': 'every non-zero UsageCharged has exactly one UsageDebited and exactly one credit entry, of its amount; no posting without its charge',
  'wallet-balances': "every wallet event's balanceAfter == the sum of the wallet's events up to it; the wallet's balance is its last balanceAfter",
  'usage-cpu':
    "per container: sample seqs 1..n without gap or repeat; each sample's cpuNanos == the move of the cumulative counter (cpuNanosTotal) in its window; sum of sampled cpuNanos == the last sample's cpuNanosTotal (within one sample); each sample charged once, sum of charged cpuNanos == sum sampled",
  'containers-stopped': 'every started container was stopped once (nothing leaked past the settle)',
  'no-quarantine': 'no poison in the log and no MessageQuarantined record: our own services wrote nothing a reader must skip',
  'no-dead-letters': 'no MessageDeadLettered: no service gave up on an event',
  audit: 'verifyAudit (@mesh/audit) over the whole log passes',
} as const;
export type CheckName = keyof typeof CHECKS;

/** What the workload expects of a task: the exit code its script ends with (0: success); undefined for an input it did not write. */
export type ExpectedExit = (input: TaskInput) => number | undefined;

const EXAMPLES_MAX = 8;

class Check {
  private count = 0;
  private readonly examples: string[] = [];
  constructor(readonly name: CheckName) {}
  violate(line: string): void {
    this.count++;
    if (this.examples.length < EXAMPLES_MAX) this.examples.push(line);
  }
  result(): CheckResult {
    return { name: this.name, rule: CHECKS[this.name], pass: this.count === 0, violations: this.count, examples: [...this.examples] };
  }
}

const money = (amount: string, currency: string) => parseAmount(amount, currencyOf(currency), { allowNegative: true, allowZero: true });

/**
 * Checks the books of a soak from the RAW log (every event, in log order), never from a service's
 * projection: the services are what is under test. `walletIds` are the workload's user wallets (the
 * tasks checked are theirs); money checks cover every wallet in the log. Pure: no I/O.
 */
export function checkEvents(
  events: readonly RecordedEvent[],
  poison: readonly PoisonMessage[],
  walletIds: ReadonlySet<string>,
  expectedExit: ExpectedExit,
): CheckResult[] {
  const quarantine = checkRecords(events, 'no-quarantine', (e) =>
    isEvent(e, MessageQuarantined) ? `${e.data.subject} seq ${e.data.streamSequence}: ${e.data.reason} (${e.data.reader})` : undefined,
  );
  const poisonLines = poison.map((p) => `poison in the log: ${p.subject} seq ${p.seq}: ${p.reason}`);
  return [
    checkTasks(events, walletIds, expectedExit),
    checkFailures(events, walletIds, expectedExit),
    checkRequeues(events, walletIds),
    ...checkMoney(events),
    checkUsage(events),
    checkContainers(events),
    withLines(quarantine, poisonLines),
    checkRecords(events, 'no-dead-letters', (e) =>
      isEvent(e, MessageDeadLettered)
        ? `${e.data.service}/${e.data.consumer}: ${e.data.eventType ?? '?'} ${e.data.stream ?? e.data.subject}: ${e.data.error}`
        : undefined,
    ),
  ];
}

function checkTasks(events: readonly RecordedEvent[], walletIds: ReadonlySet<string>, expectedExit: ExpectedExit): CheckResult {
  const check = new Check('tasks-end-once');
  const ends = new Map<string, string[]>();
  for (const e of events) {
    if (isEvent(e, TaskSubmitted) && walletIds.has(e.data.walletId)) {
      if (ends.has(e.data.taskId)) check.violate(`${e.data.taskId}: submitted twice (positions ..${e.position})`);
      ends.set(e.data.taskId, []);
      if (expectedExit(e.data.input) === undefined) check.violate(`${e.data.taskId}: input not written by the workload`);
    }
  }
  for (const e of events) {
    if (isEvent(e, TaskSucceeded) || isEvent(e, TaskFailed) || isEvent(e, TaskCancelled)) ends.get(e.data.taskId)?.push(`${e.type}@${e.position}`);
  }
  for (const [taskId, list] of ends)
    if (list.length !== 1) check.violate(`${taskId}: ${list.length} terminal events${list.length ? ` (${list.join(', ')})` : ''}`);
  return check.result();
}

function checkFailures(events: readonly RecordedEvent[], walletIds: ReadonlySet<string>, expectedExit: ExpectedExit): CheckResult {
  const check = new Check('failures-are-scripts');
  const expected = new Map<string, number | undefined>();
  for (const e of events) if (isEvent(e, TaskSubmitted) && walletIds.has(e.data.walletId)) expected.set(e.data.taskId, expectedExit(e.data.input));
  for (const e of events) {
    if (isEvent(e, TaskSucceeded) && expected.has(e.data.taskId) && expected.get(e.data.taskId) !== 0)
      check.violate(`${e.data.taskId}: succeeded though its script exits ${expected.get(e.data.taskId)}`);
    if (isEvent(e, TaskFailed) && expected.has(e.data.taskId)) {
      const want = expected.get(e.data.taskId);
      if (want === 0 || e.data.exitCode !== want)
        check.violate(
          `${e.data.taskId} attempt ${e.data.attempt}: TaskFailed exitCode ${e.data.exitCode ?? 'none'} (${e.data.reason}); its script exits ${want}`,
        );
    }
    if (isEvent(e, ExecutionFailed) && expected.has(e.data.taskId) && e.data.reason === 'exit-code' && e.data.exitCode !== expected.get(e.data.taskId))
      check.violate(
        `${e.data.executionId} (${e.data.taskId} attempt ${e.data.attempt}): ExecutionFailed exit-code ${e.data.exitCode ?? 'none'}, its script exits ${expected.get(e.data.taskId)}: ${e.data.stderrTail.slice(-200)}`,
      );
  }
  return check.result();
}

function checkRequeues(events: readonly RecordedEvent[], walletIds: ReadonlySet<string>): CheckResult {
  const check = new Check('requeues-justified');
  const dispatchedAtMs = new Map<string, number>();
  for (const e of events) {
    if (isEvent(e, TaskDispatched) && walletIds.has(e.data.walletId)) dispatchedAtMs.set(`${e.data.taskId}#${e.data.attempt}`, Date.parse(e.occurredAt));
    if (!isEvent(e, TaskRequeued) || !walletIds.has(e.data.walletId)) continue;
    // A node declared lost ('node X silent for N ms') is silent since its last heartbeat, which may
    // precede this attempt's dispatch: that is the node's silence, not the attempt's age, and not a
    // kill of a healthy attempt (heartbeats are not in the log; the node specs kill the node).
    if (/ silent for \d+ ms/.test(e.data.detail ?? '')) continue;
    const silence = /(?:for|within) (\d+) ms/.exec(e.data.detail ?? '');
    const at = dispatchedAtMs.get(`${e.data.taskId}#${e.data.attempt}`);
    if (!silence || at === undefined) continue;
    const afterMs = Date.parse(e.occurredAt) - at;
    if (afterMs < Number(silence[1]))
      check.violate(`${e.data.taskId} attempt ${e.data.attempt}: requeued ${afterMs} ms after its dispatch: "${e.data.detail}"`);
  }
  return check.result();
}

function checkMoney(events: readonly RecordedEvent[]): CheckResult[] {
  const books = new Check('books-balance');
  const paired = new Check('charges-paired');
  const balances = new Check('wallet-balances');
  const charges = new Map<string, { amount: bigint; walletId: string; providerWalletId: string }>();
  const debits = new Map<string, bigint[]>();
  const credits = new Map<string, bigint[]>();
  const wallets = new Map<string, { balance: bigint; revision: number; currency: string }>();
  let charged = 0n;
  let debited = 0n;
  let credited = 0n;
  let currency = 'GRC';
  for (const e of events) {
    if (isEvent(e, UsageCharged)) {
      const amount = money(e.data.amount, e.data.currency);
      if (amount === 0n) continue; // absorbed by the carried remainder: the ledger posts nothing
      if (charges.has(e.data.chargeId)) paired.violate(`charge ${e.data.chargeId}: UsageCharged twice (position ${e.position})`);
      charges.set(e.data.chargeId, { amount, walletId: e.data.walletId, providerWalletId: e.data.providerWalletId });
      charged += amount;
      currency = e.data.currency;
    }
    if (!isEventOf(e, walletEvents)) continue;
    const w = wallets.get(e.stream) ?? { balance: 0n, revision: -1, currency: e.data.currency };
    if (e.revision !== w.revision + 1) balances.violate(`${e.stream}: revision ${e.revision} after ${w.revision}`);
    w.balance += balanceDelta(e);
    w.revision = e.revision;
    const after = money(e.data.balanceAfter, e.data.currency);
    if (after !== w.balance)
      balances.violate(
        `${e.stream}@${e.revision} ${e.type}: balanceAfter ${e.data.balanceAfter}, sum of the events ${formatAmount(w.balance, currencyOf(w.currency))}`,
      );
    w.balance = after; // one wrong event is one violation, not one per event after it
    wallets.set(e.stream, w);
    if (isEvent(e, UsageDebited)) {
      const amount = money(e.data.amount, e.data.currency);
      debited += amount;
      debits.set(e.data.chargeId, [...(debits.get(e.data.chargeId) ?? []), amount]);
    } else if (isEvent(e, UsageCredited)) {
      let sum = 0n;
      for (const c of creditedChargesOf(e.data)) {
        const amount = money(c.amount, e.data.currency);
        sum += amount;
        credits.set(c.chargeId, [...(credits.get(c.chargeId) ?? []), amount]);
      }
      credited += sum;
      if (sum !== money(e.data.amount, e.data.currency))
        books.violate(`${e.stream}@${e.revision}: UsageCredited amount ${e.data.amount} != the sum of its charges`);
    }
  }
  const fmt = (v: bigint) => `${formatAmount(v, currencyOf(currency))}`;
  if (debited !== credited) books.violate(`debited ${fmt(debited)} != credited ${fmt(credited)}`);
  if (debited !== charged) books.violate(`debited ${fmt(debited)} != charged ${fmt(charged)}`);
  for (const [chargeId, c] of charges) {
    const d = debits.get(chargeId) ?? [];
    const k = credits.get(chargeId) ?? [];
    if (d.length !== 1 || d[0] !== c.amount) paired.violate(`charge ${chargeId} (${fmt(c.amount)}, ${c.walletId}): debits [${d.map(fmt).join(', ')}]`);
    if (k.length !== 1 || k[0] !== c.amount) paired.violate(`charge ${chargeId} (${fmt(c.amount)}, ${c.walletId}): credits [${k.map(fmt).join(', ')}]`);
  }
  for (const chargeId of new Set([...debits.keys(), ...credits.keys()]))
    if (!charges.has(chargeId)) paired.violate(`posting of ${chargeId} without its UsageCharged`);
  return [books.result(), paired.result(), balances.result()];
}

function checkUsage(events: readonly RecordedEvent[]): CheckResult {
  const check = new Check('usage-cpu');
  interface Usage {
    seqs: number[];
    sampled: bigint;
    maxWindow: bigint;
    /** The counter as the samples tile it (the previous sample's cpuNanosTotal). */
    counter: bigint;
    lastTotal?: bigint;
    lastSeq: number;
    lastFinal: boolean;
    /** Samples whose counter went backwards (the sampler then bills 0 and takes the reading as the new base). */
    resets: string[];
    charged: bigint;
    samples: Set<string>;
  }
  const usage = new Map<string, Usage>();
  const of = (containerId: string) => {
    let u = usage.get(containerId);
    if (!u)
      usage.set(
        containerId,
        (u = { seqs: [], sampled: 0n, maxWindow: 0n, counter: 0n, lastSeq: 0, lastFinal: false, resets: [], charged: 0n, samples: new Set() }),
      );
    return u;
  };
  const chargedSamples = new Map<string, number>();
  for (const e of events) {
    if (isEvent(e, ResourceSampled)) {
      const u = of(e.data.containerId);
      const cpuNanos = BigInt(e.data.cpuNanos);
      u.seqs.push(e.data.seq);
      u.sampled += cpuNanos;
      if (cpuNanos > u.maxWindow) u.maxWindow = cpuNanos;
      u.samples.add(e.data.sampleId);
      u.lastSeq = e.data.seq;
      u.lastFinal = e.data.final;
      u.lastTotal = e.data.cpuNanosTotal === undefined ? undefined : BigInt(e.data.cpuNanosTotal);
      if (u.lastTotal === undefined) continue;
      if (u.lastTotal >= u.counter) {
        if (cpuNanos !== u.lastTotal - u.counter)
          check.violate(`${e.data.containerId} seq ${e.data.seq}: cpuNanos ${cpuNanos}, but the counter moved ${u.lastTotal - u.counter} ns in its window`);
      } else {
        u.resets.push(`seq ${e.data.seq}${e.data.final ? ' (final)' : ''}: counter ${u.counter} -> ${u.lastTotal} ns, billed ${cpuNanos}`);
      }
      u.counter = u.lastTotal;
    } else if (isEvent(e, UsageCharged)) {
      of(e.data.containerId).charged += BigInt(e.data.cpuNanos);
      chargedSamples.set(e.data.sampleId, (chargedSamples.get(e.data.sampleId) ?? 0) + 1);
    }
  }
  for (const [containerId, u] of usage) {
    u.seqs.forEach((seq, i) => {
      if (seq !== i + 1) check.violate(`${containerId}: sample #${i + 1} has seq ${seq}`);
    });
    if (u.lastTotal === undefined) check.violate(`${containerId}: last sample (seq ${u.lastSeq}) carries no cpuNanosTotal`);
    else if (u.sampled !== u.lastTotal) {
      const diff = u.sampled > u.lastTotal ? u.sampled - u.lastTotal : u.lastTotal - u.sampled;
      if (diff > u.maxWindow)
        check.violate(
          `${containerId}: sampled ${u.sampled} ns, measured ${u.lastTotal} ns by its last sample (seq ${u.lastSeq}${u.lastFinal ? ', final' : ''}); off by ${diff} ns, more than one sample` +
            (u.resets.length ? `; the counter went backwards at ${u.resets.join('; ')}` : ''),
        );
    }
    if (u.charged !== u.sampled) check.violate(`${containerId}: charged ${u.charged} ns of CPU, sampled ${u.sampled} ns`);
    for (const sampleId of u.samples) {
      const n = chargedSamples.get(sampleId) ?? 0;
      if (n !== 1) check.violate(`${containerId}: sample ${sampleId} charged ${n} times`);
    }
  }
  return check.result();
}

function checkContainers(events: readonly RecordedEvent[]): CheckResult {
  const check = new Check('containers-stopped');
  const stops = new Map<string, number>();
  for (const e of events) {
    if (isEvent(e, ContainerStarted)) stops.set(e.data.containerId, stops.get(e.data.containerId) ?? 0);
    if (isEvent(e, ContainerStopped)) stops.set(e.data.containerId, (stops.get(e.data.containerId) ?? 0) + 1);
  }
  for (const [containerId, n] of stops) if (n !== 1) check.violate(`${containerId}: stopped ${n} times`);
  return check.result();
}

function checkRecords(events: readonly RecordedEvent[], name: CheckName, describe: (e: RecordedEvent) => string | undefined): CheckResult {
  const check = new Check(name);
  for (const e of events) {
    const line = describe(e);
    if (line !== undefined) check.violate(line);
  }
  return check.result();
}

function withLines(result: CheckResult, lines: string[]): CheckResult {
  if (lines.length === 0) return result;
  return { ...result, pass: false, violations: result.violations + lines.length, examples: [...result.examples, ...lines].slice(0, EXAMPLES_MAX) };
}
