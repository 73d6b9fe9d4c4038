import { execSync } from 'node:child_process';
import { parseAmount, type RecordedEvent } from '@mesh/contracts';
import { prepare, runScenario, type ScenarioSummary } from '../../cli/demo/scenarios';
import { eventually } from '@mesh/testing';
import { E2EStack } from './stack';

/**
 * The reference system's three scenarios at high speed against the real stack (nats-server, Docker,
 * the five services as processes), asserting event sequences and final balances from the audit
 * projections, then the ledger's audit. Speed: E2E_SPEED (default 20).
 */
// 20, as the demo: on a 2-core machine the abort scenario is suspended at ~94% of its task's
// duration (3 busy loops get 2 cores), and reaction latencies do not shrink with the speed.
const SPEED = Number(process.env.E2E_SPEED ?? 20);
const stack = new E2EStack(SPEED);
const ofWallet = (walletId: string) => (e: RecordedEvent) => (e.data as { walletId?: string }).walletId === walletId;

async function balance(walletId: string): Promise<bigint> {
  const b = (await stack.client.requestRaw('mesh.query.ledger.balance', { walletId })) as { balance: string };
  return parseAmount(b.balance, undefined, { allowNegative: true, allowZero: true });
}

async function expectAuditPasses() {
  const report = (await stack.client.requestRaw('mesh.query.ledger.audit', {}, 120_000)) as { pass: boolean };
  expect(report).toMatchObject({ pass: true });
}

function expectOk(summary: ScenarioSummary) {
  if (!summary.ok) throw new Error(`${summary.scenario} failed: ${summary.error}\n${JSON.stringify(summary)}\n${stack.logs()}`);
}

describe(`reference scenarios end to end (speed ${SPEED})`, () => {
  beforeAll(async () => {
    execSync('docker info', { stdio: 'ignore' }); // a clear failure when no engine answers
    await stack.start();
    await prepare(stack.client, stack.options);
  }, 240_000);
  afterAll(async () => {
    await stack.stop();
  }, 60_000);

  it('normal: every task succeeds, the balance never goes below 0, the idle container stops', async () => {
    const s = await runScenario('normal', stack.client, stack.store, stack.options);
    expectOk(s);
    expect(s.tasksSucceeded).toBe(9);
    expect(s.aborts).toBe(0);
    expect(parseAmount(s.minBalance, undefined, { allowZero: true })).toBeGreaterThanOrEqual(0n);
    const events = await stack.events(ofWallet(s.walletId));
    // Changes only: a wallet's first standing (from null, at balance 0 before its deposit) is not one.
    const changes = events.filter((e) => e.type === 'StandingChanged' && (e.data as { from: string | null }).from !== null);
    expect(changes.map((e) => (e.data as { to: string }).to)).not.toContain('overdrawn');
    expect(events.some((e) => e.type === 'ContainerStopped' && (e.data as { reason: string }).reason === 'idle')).toBe(true);
    expect(events.some((e) => e.type === 'ScalingDecided')).toBe(true);
    // The ledger's projection says what the wallet stream says (the idle warm container is still
    // billed for its few CPU nanoseconds until it stops, so compare at one moment, not with the summary).
    await eventually(
      async () => {
        const stream = await stack.store.read(`wallet-${s.walletId}`);
        const last = (stream[stream.length - 1].data as { balanceAfter: string }).balanceAfter;
        return (await balance(s.walletId)) === parseAmount(last, undefined, { allowZero: true, allowNegative: true });
      },
      30_000,
      'projection balance equal to the wallet stream',
    );
    await expectAuditPasses();
  }, 900_000);

  it('debt: overdrawn during the third task, throttled, the rest wait for the deposit that repays the debt', async () => {
    const s = await runScenario('debt', stack.client, stack.store, stack.options);
    expectOk(s);
    expect(s.tasksSucceeded).toBe(9);
    expect(s.aborts).toBe(0);
    const events = await stack.events(ofWallet(s.walletId));
    const overdrawn = events.find(
      (e) => e.type === 'StandingChanged' && (e.data as { from: string | null; to: string }).from !== null && (e.data as { to: string }).to === 'overdrawn',
    )!;
    expect(overdrawn).toBeDefined();
    expect(events.some((e) => e.type === 'ScalingDecided' && (e.data as { reason: string }).reason === 'throttle' && e.position > overdrawn.position)).toBe(
      true,
    );
    // The 2 GRC deposit that repays the debt: the first deposit after the wallet went overdrawn.
    const repay = events.find((e) => e.type === 'FundsDeposited' && e.position > overdrawn.position)!;
    expect(repay).toBeDefined();
    const dispatchedWhileInDebt = events.filter((e) => e.type === 'TaskDispatched' && e.position > overdrawn.position && e.position < repay.position);
    expect(dispatchedWhileInDebt).toHaveLength(0);
    expect(parseAmount(s.minBalance, undefined, { allowNegative: true })).toBeLessThan(0n);
    await expectAuditPasses();
  }, 900_000);

  it('abort: suspended at max debt, the task is aborted and requeued, runs again after a deposit', async () => {
    const s = await runScenario('abort', stack.client, stack.store, stack.options);
    expectOk(s);
    expect(s.aborts).toBeGreaterThanOrEqual(1);
    expect(s.requeues).toBeGreaterThanOrEqual(1);
    expect(s.tasksSucceeded).toBe(1);
    const events = await stack.events(ofWallet(s.walletId));
    expect(events.some((e) => e.type === 'ExecutionAborted' && (e.data as { reason: string }).reason === 'suspended')).toBe(true);
    expect(events.some((e) => e.type === 'ContainerStopped' && (e.data as { reason: string }).reason === 'suspended')).toBe(true);
    expect(events.some((e) => e.type === 'TaskRequeued')).toBe(true);
    // funds consumed before the abort stay consumed: the debt was repaid by the deposit
    expect(parseAmount(s.minBalance, undefined, { allowNegative: true })).toBeLessThanOrEqual(-parseAmount('0.5'));
    await expectAuditPasses();
  }, 900_000);

  it('survives a SIGKILL of a service in the middle of scenario 1: completes, nothing charged twice, audit passes', async () => {
    const running = runScenario('normal', stack.client, stack.store, stack.options);
    const firstCharge = async () => (await stack.events((e) => e.type === 'UsageCharged')).length;
    const before = await firstCharge();
    const deadline = Date.now() + 120_000;
    while ((await firstCharge()) < before + 10 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 500));
    await stack.kill('credit-manager');
    await stack.kill('ledger');
    const s = await running;
    expectOk(s);
    expect(s.tasksSucceeded).toBe(9);
    const charges = await stack.events((e) => e.type === 'UsageCharged');
    const sampleIds = charges.map((e) => (e.data as { sampleId: string }).sampleId);
    expect(new Set(sampleIds).size).toBe(sampleIds.length);
    await expectAuditPasses();
  }, 900_000);
});
