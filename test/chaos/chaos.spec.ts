import { execSync } from 'node:child_process';
import { formatSummary, runSoak, type SoakSummary } from './soak';

/**
 * The short chaos soak (CI): five wallets, 30 short tasks, about 3.5 minutes of real faults (service
 * SIGKILLs, nats-server frozen and restarted, the worker's private dockerd restarted), then the
 * books checked from the raw log. No timed assertion: the window only bounds how long faults are
 * injected; what is asserted is the state once everything has settled. CHAOS_SEED replays a run.
 * The long run: `scripts/chaos.ts --minutes N` (docs/chaos.md).
 */
const SEED = Number(process.env.CHAOS_SEED ?? Date.now() % 1_000_000);

describe('chaos soak (short)', () => {
  let summary: SoakSummary;

  beforeAll(async () => {
    execSync('docker info', { stdio: 'ignore' }); // a clear failure when no engine answers
    summary = await runSoak({
      faultWindowMs: 210_000,
      faultsMax: 16,
      gapMinMs: 6000,
      gapMaxMs: 15_000,
      tasksPerWallet: 6,
      settleMs: 300_000,
      seed: SEED,
      log: (l) => process.stdout.write(`[chaos] ${l}\n`),
    });
    process.stdout.write(`${formatSummary(summary)}\n`);
  }, 900_000);

  it('injects every kind of fault, each one for real', () => {
    expect(summary.faults.filter((f) => f.error)).toEqual([]);
    for (const [kind, n] of Object.entries(summary.faultsByKind)) expect([kind, n > 0]).toEqual([kind, true]);
  });

  it('settles: every task ended, every container stopped, every sample charged and posted', () => {
    expect(summary.unsettled).toEqual([]);
    expect(summary.submitErrors).toEqual([]);
    expect(summary.tasks.submitted).toBe(summary.tasks.planned);
  });

  it('keeps the books from the raw events: every check passes', () => {
    const failed = summary.checks.filter((c) => !c.pass).map((c) => `${c.name}: ${c.violations} violations\n  ${c.examples.join('\n  ')}`);
    expect(failed).toEqual([]);
    expect(summary.booksBalanced).toBe(true);
  });
});
