import { execSync } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  ContainerStopped,
  ExecutionAborted,
  isEvent,
  parseAmount,
  ScalingDecided,
  StandingChanged,
  UsageCharged,
  walletEvents,
  isEventOf,
  type RecordedEvent,
} from '@mesh/contracts';
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
// With authorization: services with their own credentials, this test as the operator (docs/security.md).
const stack = new E2EStack(SPEED, true);
/** Every event whose data names the wallet (the events of many categories carry `walletId`). */
const ofWallet = (walletId: string) => (e: RecordedEvent) =>
  typeof e.data === 'object' && e.data !== null && 'walletId' in e.data && e.data.walletId === walletId;

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
    const changes = events.filter((e) => isEvent(e, StandingChanged) && e.data.from !== null);
    expect(changes.map((e) => isEvent(e, StandingChanged) && e.data.to)).not.toContain('overdrawn');
    expect(events.some((e) => isEvent(e, ContainerStopped) && e.data.reason === 'idle')).toBe(true);
    expect(events.some((e) => e.type === 'ScalingDecided')).toBe(true);
    // The ledger's projection says what the wallet stream says (the idle warm container is still
    // billed for its few CPU nanoseconds until it stops, so compare at one moment, not with the summary).
    await eventually(
      async () => {
        const stream = await stack.store.read(`wallet-${s.walletId}`);
        const head = stream[stream.length - 1];
        if (!isEventOf(head, walletEvents)) throw new Error(`wallet-${s.walletId} holds a ${head.type}`);
        const last = head.data.balanceAfter;
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
    const overdrawn = events.find((e) => isEvent(e, StandingChanged) && e.data.from !== null && e.data.to === 'overdrawn')!;
    expect(overdrawn).toBeDefined();
    expect(events.some((e) => isEvent(e, ScalingDecided) && e.data.reason === 'throttle' && e.position > overdrawn.position)).toBe(true);
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
    expect(events.some((e) => isEvent(e, ExecutionAborted) && e.data.reason === 'suspended')).toBe(true);
    expect(events.some((e) => isEvent(e, ContainerStopped) && e.data.reason === 'suspended')).toBe(true);
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
    while ((await firstCharge()) < before + 10 && Date.now() < deadline) await sleep(500);
    await stack.kill('credit-manager');
    await stack.kill('ledger');
    const s = await running;
    expectOk(s);
    expect(s.tasksSucceeded).toBe(9);
    const charges = await stack.events((e) => e.type === 'UsageCharged');
    const sampleIds = charges.map((e) => (isEvent(e, UsageCharged) ? e.data.sampleId : e.id));
    expect(new Set(sampleIds).size).toBe(sampleIds.length);
    await expectAuditPasses();
  }, 900_000);

  it('the services and the operator did all of the above within their NATS permissions (no violation logged)', () => {
    // The stack runs with the generated authorization block: a permission the table forgot shows here.
    expect(stack.server.logs.split('\n').filter((l) => /Violation/.test(l))).toEqual([]);
  });
});
