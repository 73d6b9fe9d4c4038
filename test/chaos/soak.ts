import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { verifyAudit } from '@mesh/audit';
import { messageOf, retry } from '@mesh/common';
import {
  ContainerStarted,
  ContainerStopped,
  ExecutionAborted,
  ExecutionFailed,
  formatAmount,
  isEvent,
  isEventOf,
  parseAmount,
  ResourceSampled,
  StandingChanged,
  TaskCancelled,
  TaskFailed,
  TaskRequeued,
  TaskSubmitted,
  TaskSucceeded,
  UsageCharged,
  UsageCredited,
  UsageDebited,
  creditedChargesOf,
  walletEvents,
  type AuditReport,
  type RecordedEvent,
} from '@mesh/contracts';
import { readAllPaged, type PoisonMessage } from '@mesh/eventstore';
import { checkEvents, type CheckResult } from './checks';
import { FaultDriver, Rng, type FaultKind, type InjectedFault } from './faults';
import { ChaosStack, type UnplannedExit } from './stack';
import { expectedExit, planWorkload, Workload, type WalletRole } from './workload';

export interface SoakOptions {
  /** How long faults are injected (tasks are submitted over its first 60%). */
  faultWindowMs: number;
  faultsMax: number;
  gapMinMs: number;
  gapMaxMs: number;
  tasksPerWallet: number;
  /** Bound on the wait, after the window, for every task to end and every container to stop. */
  settleMs: number;
  seed: number;
  log: (line: string) => void;
}

export interface WalletSummary {
  walletId: string;
  role: WalletRole;
  balance: string;
  minBalance: string;
  /** Standings it went through, in order (from StandingChanged). */
  standings: string[];
  deposits: number;
}

export interface SoakSummary {
  seed: number;
  runId: string;
  pass: boolean;
  settled: boolean;
  /** What was still open when the settle ended (empty when settled). */
  unsettled: string[];
  durationMs: number;
  faults: InjectedFault[];
  faultsByKind: Record<FaultKind, number>;
  unplannedExits: UnplannedExit[];
  events: number;
  tasks: {
    planned: number;
    expectedFailures: number;
    submitted: number;
    succeeded: number;
    failed: number;
    cancelled: number;
    requeues: number;
    aborts: number;
    platformKills: number;
  };
  /** Why attempts ended without a verdict: `requeue:<reason>`, `abort:<reason>`, `failed:<reason>` (platform kills) -> count. */
  attemptEnds: Record<string, number>;
  /** The raw log of the run as JSON lines (one event per line), for a post-mortem. */
  dumpFile?: string;
  submitErrors: string[];
  wallets: WalletSummary[];
  booksBalanced: boolean;
  checks: CheckResult[];
  audit?: Pick<AuditReport, 'pass' | 'events' | 'wallets' | 'charges' | 'debits' | 'credits' | 'invariants'>;
}

/** The whole log so far, read incrementally (a poll re-reads only what is new). */
class LogReader {
  readonly events: RecordedEvent[] = [];
  readonly poison: PoisonMessage[] = [];
  private next = 1n;
  constructor(private readonly stack: ChaosStack) {}
  async update(): Promise<RecordedEvent[]> {
    // 'report': the soak only reads; a quarantine record written by it would look like one of the services'.
    for await (const e of readAllPaged(this.stack.store, this.next, 1000, { quarantine: 'report', onPoison: (p) => this.poison.push(p) })) {
      this.events.push(e);
      this.next = e.position + 1n;
    }
    return this.events;
  }
}

/** What still keeps the books from being final: tasks not ended, containers running, samples not charged, charges not posted. */
function openItems(events: readonly RecordedEvent[], walletIds: ReadonlySet<string>): { unsettled: string[]; unfinishedByWallet: Map<string, number> } {
  const tasks = new Map<string, string>();
  const containers = new Set<string>();
  const samples = new Set<string>();
  const charges = new Set<string>();
  const debits = new Set<string>();
  const credits = new Set<string>();
  for (const e of events) {
    if (isEvent(e, TaskSubmitted) && walletIds.has(e.data.walletId)) tasks.set(e.data.taskId, e.data.walletId);
    else if (isEvent(e, TaskSucceeded) || isEvent(e, TaskFailed) || isEvent(e, TaskCancelled)) tasks.delete(e.data.taskId);
    else if (isEvent(e, ContainerStarted)) containers.add(e.data.containerId);
    else if (isEvent(e, ContainerStopped)) containers.delete(e.data.containerId);
    else if (isEvent(e, ResourceSampled)) samples.add(e.data.sampleId);
    else if (isEvent(e, UsageCharged)) {
      samples.delete(e.data.sampleId);
      if (e.data.amount !== '0') charges.add(e.data.chargeId);
    } else if (isEvent(e, UsageDebited)) debits.add(e.data.chargeId);
    else if (isEvent(e, UsageCredited)) for (const c of creditedChargesOf(e.data)) credits.add(c.chargeId);
  }
  const unposted = [...charges].filter((c) => !debits.has(c) || !credits.has(c));
  const unfinishedByWallet = new Map<string, number>();
  for (const w of tasks.values()) unfinishedByWallet.set(w, (unfinishedByWallet.get(w) ?? 0) + 1);
  const unsettled: string[] = [];
  if (tasks.size) unsettled.push(`${tasks.size} tasks not ended: ${[...tasks.keys()].slice(0, 5).join(', ')}`);
  if (containers.size) unsettled.push(`${containers.size} containers not stopped: ${[...containers].slice(0, 5).join(', ')}`);
  if (samples.size) unsettled.push(`${samples.size} samples not charged`);
  if (unposted.length) unsettled.push(`${unposted.length} charges not posted: ${unposted.slice(0, 5).join(', ')}`);
  return { unsettled, unfinishedByWallet };
}

const money = (amount: string) => parseAmount(amount, undefined, { allowNegative: true, allowZero: true });

function lastBalances(events: readonly RecordedEvent[]): Map<string, bigint> {
  const out = new Map<string, bigint>();
  for (const e of events) if (isEventOf(e, walletEvents)) out.set(e.data.walletId, money(e.data.balanceAfter));
  return out;
}

/**
 * The chaos soak: a five-wallet workload on the real stack while faults are injected, then the
 * books checked from the raw log. Never throws for a failed check: the summary says what failed.
 */
export async function runSoak(options: SoakOptions): Promise<SoakSummary> {
  const started = Date.now();
  const { log } = options;
  const rng = new Rng(options.seed);
  const runId = `chaos${options.seed.toString(36)}${Date.now().toString(36)}`;
  const stack = new ChaosStack();
  log(`run ${runId} (seed ${options.seed}): starting nats-server, a private dockerd and the five services`);
  await stack.start();
  try {
    stack.supervise(log);
    const plan = planWorkload(runId, options.tasksPerWallet, options.faultWindowMs, rng);
    const walletIds = new Set(plan.wallets.map((w) => w.walletId));
    const workload = new Workload(stack.client, runId, plan.wallets, plan.tasks, log);
    await workload.prepare();
    log(`workload: ${plan.wallets.length} wallets, ${plan.tasks.length} tasks; faults for ${Math.round(options.faultWindowMs / 1000)} s`);

    const driver = new FaultDriver(stack, { ...options, durationMs: options.faultWindowMs, rng });
    const windowStart = Date.now();
    const midDeposits = (async () => {
      // Standing changes under faults: the suspended wallets get a little money half-way, then run out again.
      await sleep(options.faultWindowMs / 2);
      for (const w of plan.wallets.filter((x) => x.role === 'suspended')) await workload.deposit(w.walletId, '3', `${w.walletId}-mid`);
    })();
    await Promise.all([driver.run(), workload.submitAll(windowStart), midDeposits]);
    log(`fault window over: ${driver.faults.length} faults; settling (at most ${Math.round(options.settleMs / 1000)} s)`);

    // Settle: top up wallets whose tasks wait for money, until every task ended, every container
    // stopped and every sample is charged and posted (bounded).
    const reader = new LogReader(stack);
    const topUps = new Map<string, { count: number; atMs: number }>();
    const deadline = Date.now() + options.settleMs;
    let unsettled: string[] = ['not read yet'];
    let lastReportMs = 0;
    while (Date.now() < deadline) {
      try {
        const events = await reader.update();
        const open = openItems(events, walletIds);
        unsettled = open.unsettled;
        if (unsettled.length === 0) break;
        const balances = lastBalances(events);
        for (const [walletId, n] of open.unfinishedByWallet) {
          const t = topUps.get(walletId) ?? { count: 0, atMs: 0 };
          if (n > 0 && (balances.get(walletId) ?? 0n) < money('20') && t.count < 10 && Date.now() - t.atMs > 15_000) {
            topUps.set(walletId, { count: t.count + 1, atMs: Date.now() });
            await workload.deposit(walletId, '50', `${walletId}-topup-${t.count + 1}`);
          }
        }
        if (Date.now() - lastReportMs > 15_000) {
          lastReportMs = Date.now();
          log(`  settling: ${unsettled.join('; ')}`);
        }
      } catch (err) {
        log(`  settle read failed (${messageOf(err)}); again`);
      }
      await sleep(2000);
    }
    log(unsettled.length === 0 ? 'settled' : `NOT settled within ${options.settleMs} ms: ${unsettled.join('; ')}`);

    // The checks read the whole log once more from position 1, after the settle.
    const reread = await retry(
      'read the whole log',
      async () => {
        const r = new LogReader(stack);
        await r.update();
        return r;
      },
      { attempts: 3, baseDelayMs: 2000 },
    );
    const dumpFile = join(tmpdir(), `mesh-${runId}.jsonl`);
    writeFileSync(dumpFile, reread.events.map((e) => JSON.stringify({ ...e, position: String(e.position) })).join('\n') + '\n');
    const checks = checkEvents(reread.events, reread.poison, walletIds, expectedExit);
    let audit: SoakSummary['audit'];
    try {
      const report = await verifyAudit(stack.store);
      audit = {
        pass: report.pass,
        events: report.events,
        wallets: report.wallets,
        charges: report.charges,
        debits: report.debits,
        credits: report.credits,
        invariants: report.invariants,
      };
      checks.push({
        name: 'audit',
        rule: 'verifyAudit (@mesh/audit) over the whole log passes',
        pass: report.pass,
        violations: report.invariants.reduce((n, i) => n + i.violations, 0),
        examples: report.invariants.filter((i) => !i.pass).flatMap((i) => i.examples.map((x) => `${i.name}: ${x}`)),
      });
    } catch (err) {
      checks.push({
        name: 'audit',
        rule: 'verifyAudit (@mesh/audit) over the whole log passes',
        pass: false,
        violations: 1,
        examples: [`the audit failed to run: ${messageOf(err)}`],
      });
    }
    const summary = summarise(reread.events, plan, workload, driver, stack, checks, audit);
    const settled = unsettled.length === 0;
    return {
      ...summary,
      dumpFile,
      seed: options.seed,
      runId,
      settled,
      unsettled: settled ? [] : unsettled,
      pass: settled && checks.every((c) => c.pass) && driver.faults.every((f) => !f.error) && workload.submitErrors.length === 0,
      durationMs: Date.now() - started,
    };
  } catch (err) {
    log(`soak aborted: ${messageOf(err)}\n${stack.logs()}`);
    throw err;
  } finally {
    await stack.stop();
  }
}

function summarise(
  events: readonly RecordedEvent[],
  plan: ReturnType<typeof planWorkload>,
  workload: Workload,
  driver: FaultDriver,
  stack: ChaosStack,
  checks: CheckResult[],
  audit: SoakSummary['audit'],
): Omit<SoakSummary, 'seed' | 'runId' | 'settled' | 'unsettled' | 'pass' | 'durationMs'> {
  const ours = new Set(plan.wallets.map((w) => w.walletId));
  const tasks = {
    planned: plan.tasks.length,
    expectedFailures: plan.tasks.filter((t) => t.exitCode !== 0).length,
    submitted: 0,
    succeeded: 0,
    failed: 0,
    cancelled: 0,
    requeues: 0,
    aborts: 0,
    platformKills: 0,
  };
  const wallets = new Map<string, WalletSummary>(
    plan.wallets.map((w) => [w.walletId, { walletId: w.walletId, role: w.role, balance: '0', minBalance: '0', standings: [], deposits: 0 }]),
  );
  const mins = new Map<string, bigint>();
  const attemptEnds: Record<string, number> = {};
  const count = (key: string) => (attemptEnds[key] = (attemptEnds[key] ?? 0) + 1);
  for (const e of events) {
    if (isEvent(e, TaskRequeued) && ours.has(e.data.walletId)) count(`requeue:${e.data.reason}`);
    if (isEvent(e, ExecutionAborted) && ours.has(e.data.walletId)) count(`abort:${e.data.reason}`);
    if (isEvent(e, ExecutionFailed) && ours.has(e.data.walletId) && e.data.reason !== 'exit-code') count(`failed:${e.data.reason}`);
    if (isEvent(e, TaskSubmitted) && ours.has(e.data.walletId)) tasks.submitted++;
    else if (isEvent(e, TaskSucceeded) && ours.has(e.data.walletId)) tasks.succeeded++;
    else if (isEvent(e, TaskFailed) && ours.has(e.data.walletId)) tasks.failed++;
    else if (isEvent(e, TaskCancelled) && ours.has(e.data.walletId)) tasks.cancelled++;
    else if (isEvent(e, TaskRequeued) && ours.has(e.data.walletId)) tasks.requeues++;
    else if (isEvent(e, ExecutionAborted) && ours.has(e.data.walletId)) tasks.aborts++;
    else if (isEvent(e, ExecutionFailed) && ours.has(e.data.walletId) && e.data.reason !== 'exit-code') tasks.platformKills++;
    // A wallet's first standing (from null, at balance 0 before its first deposit) is no change.
    else if (isEvent(e, StandingChanged) && e.data.from !== null) wallets.get(e.data.walletId)?.standings.push(e.data.to);
    else if (isEventOf(e, walletEvents)) {
      const w = wallets.get(e.data.walletId);
      if (!w) continue;
      w.balance = e.data.balanceAfter;
      const b = money(e.data.balanceAfter);
      if (b < (mins.get(w.walletId) ?? 0n)) mins.set(w.walletId, b);
      if (e.type === 'FundsDeposited') w.deposits++;
    }
  }
  for (const w of wallets.values()) w.minBalance = formatAmount(mins.get(w.walletId) ?? 0n);
  const booksBalanced = checks.filter((c) => c.name === 'books-balance' || c.name === 'charges-paired' || c.name === 'wallet-balances').every((c) => c.pass);
  return {
    faults: driver.faults,
    faultsByKind: driver.countByKind(),
    unplannedExits: stack.unplannedExits,
    events: events.length,
    tasks,
    attemptEnds,
    submitErrors: workload.submitErrors,
    wallets: [...wallets.values()],
    booksBalanced,
    checks,
    audit,
  };
}

/** The summary as the lines a person reads (the soak's console output and docs/chaos.md). */
export function formatSummary(s: SoakSummary): string {
  const lines: string[] = [];
  lines.push(`chaos soak ${s.runId} (seed ${s.seed}): ${s.pass ? 'PASS' : 'FAIL'} in ${Math.round(s.durationMs / 1000)} s`);
  lines.push(
    `faults: ${s.faults.length} (${Object.entries(s.faultsByKind)
      .map(([k, n]) => `${k} ${n}`)
      .join(', ')})${s.faults.some((f) => f.error) ? `; ${s.faults.filter((f) => f.error).length} could not be injected` : ''}`,
  );
  for (const f of s.faults.filter((x) => x.error)) lines.push(`  fault ${f.kind} ${f.detail} failed: ${f.error}`);
  lines.push(`unplanned service exits (restarted by the soak's supervisor): ${s.unplannedExits.length}`);
  for (const x of s.unplannedExits)
    lines.push(`  ${x.service} code ${x.code} signal ${x.signal}${x.restartError ? ` (restart failed: ${x.restartError})` : ''}: ${lastLine(x.logTail)}`);
  lines.push(`events: ${s.events}`);
  const t = s.tasks;
  lines.push(
    `tasks: ${t.planned} planned, ${t.submitted} submitted, ${t.succeeded} succeeded, ${t.failed} failed (${t.expectedFailures} scripts exit 3 on purpose), ${t.cancelled} cancelled; ${t.requeues} requeues, ${t.aborts} aborts, ${t.platformKills} platform kills`,
  );
  lines.push(
    `attempts ended without a verdict: ${
      Object.entries(s.attemptEnds)
        .map(([k, n]) => `${k} ${n}`)
        .join(', ') || 'none'
    }`,
  );
  for (const e of s.submitErrors) lines.push(`  submit failed: ${e}`);
  lines.push(`wallets: ${s.wallets.length}`);
  for (const w of s.wallets)
    lines.push(`  ${w.walletId} (${w.role}): balance ${w.balance}, min ${w.minBalance}, ${w.deposits} deposits, standings ${w.standings.join(' > ') || '-'}`);
  lines.push(`settled: ${s.settled ? 'yes' : `NO (${s.unsettled.join('; ')})`}`);
  lines.push(`books balanced: ${s.booksBalanced ? 'yes' : 'NO'}`);
  for (const c of s.checks) {
    lines.push(`  ${c.pass ? 'ok  ' : 'FAIL'} ${c.name}: ${c.pass ? c.rule : `${c.violations} violations`}`);
    for (const x of c.examples) lines.push(`         ${x}`);
  }
  if (s.dumpFile) lines.push(`raw log: ${s.dumpFile}`);
  if (s.audit) lines.push(`audit: ${s.audit.pass ? 'pass' : 'FAIL'} (${s.audit.events} events, ${s.audit.wallets} wallets, ${s.audit.charges} charges)`);
  return lines.join('\n');
}

function lastLine(text: string): string {
  const lines = text.trim().split('\n');
  return (lines[lines.length - 1] ?? '').slice(0, 300);
}
