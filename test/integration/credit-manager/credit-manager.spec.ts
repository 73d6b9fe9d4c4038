import {
  EVENTS_STREAM,
  balanceRequest,
  chargesQuery,
  depositRequest,
  openWalletRequest,
  parseAmount,
  pricePlansQuery,
  setPolicyRequest,
  walletStandingQuery,
  isEvent,
  MessageDeadLettered,
  StandingChanged,
  UsageAnomalyRecorded,
  UsageCharged,
  type NewEventOf,
  type ResourceSampled,
} from '@mesh/contracts';
import { headers } from 'nats';
import { JetStreamEventStore } from '@mesh/eventstore';
import { MeshClient, RequestError, startService, type RunningService } from '@mesh/runtime';
import { NatsServerProcess, containerStartedEvent, eventually, resourceSampledEvent } from '@mesh/testing';
import { CreditManagerService } from '../../../apps/credit-manager/src/main';
import { LedgerService } from '../../../apps/ledger/src/main';

const MiB = 1024 * 1024;
/** 6 GRC per core-hour in minor units per core-ns is 6e8 / 3.6e12. */
const exactMinor = (cpuNanos: bigint, pricePerCoreHour = '6') => (cpuNanos * parseAmount(pricePerCoreHour)) / 3_600_000_000_000n; // floor

/**
 * The whole money path on one real nats-server: ResourceSampled (appended to the raw store as the
 * container-manager would) -> UsageCharged (credit-manager) -> UsageDebited/UsageCredited (the real
 * ledger service) -> StandingChanged (credit-manager), with a restart of the credit-manager in the
 * middle: every sample is charged exactly once and the carried remainders keep the total exact.
 */
describe('credit-manager service (real NATS, real ledger)', () => {
  let server: NatsServerProcess;
  let ledger: RunningService;
  let credit: RunningService | undefined;
  let raw: JetStreamEventStore;
  let client: MeshClient;
  const env = () => ({ NATS_URL: server.url, LOG_LEVEL: process.env.CREDIT_TEST_LOG ?? 'error', LEDGER_HTTP_PORT: '0' });

  async function container(containerId: string, walletId: string, functionId = 'f1') {
    await raw.append(
      `container-${containerId}`,
      [containerStartedEvent({ containerId, nodeId: 'n1', walletId, functionId }, { cpuMillis: 4000, memoryBytes: 512 * MiB })],
      'no_stream',
    );
  }

  function sampleEvent(
    containerId: string,
    walletId: string,
    seq: number,
    cpuNanos: number,
    opts: { taskId?: string; functionId?: string } = {},
  ): NewEventOf<typeof ResourceSampled> {
    const windowStartMs = 1_700_000_000_000 + seq * 1000;
    return resourceSampledEvent(
      { containerId, nodeId: 'n1', walletId, functionId: opts.functionId ?? 'f1' },
      { seq, taskId: opts.taskId, windowEndMs: windowStartMs + 1000, cpuNanos, memoryBytes: 64 * MiB, cpuLimitMillis: 4000, memoryLimitBytes: 512 * MiB },
    );
  }

  const sample = (containerId: string, walletId: string, seq: number, cpuNanos: number, opts: { taskId?: string; functionId?: string } = {}) =>
    raw.append(`usage-${containerId}`, [sampleEvent(containerId, walletId, seq, cpuNanos, opts)], seq === 1 ? 'no_stream' : seq - 2);

  const charges = async (containerId: string) => (await raw.read(`meter-${containerId}`)).filter((e) => isEvent(e, UsageCharged)).map((e) => e.data);
  const chargedCount = (containerId: string, n: number) =>
    eventually(async () => ((await charges(containerId)).length >= n ? true : undefined), 15_000, `${n} charges of ${containerId}`);
  const standings = async (walletId: string) => (await raw.read(`standing-${walletId}`)).filter((e) => isEvent(e, StandingChanged)).map((e) => e.data);
  const standingIs = (walletId: string, to: string) =>
    eventually(async () => ((await standings(walletId)).at(-1)?.to === to ? true : undefined), 15_000, `${walletId} ${to}`);

  beforeAll(async () => {
    server = await NatsServerProcess.start();
    const nc = await server.connect('credit-test');
    raw = await JetStreamEventStore.connect(nc);
    client = new MeshClient(nc);
    ledger = await startService(LedgerService, env());
    credit = await startService(CreditManagerService, env());
  });

  afterAll(async () => {
    await credit?.stop();
    await ledger?.stop();
    await raw?.connection.close();
    await server?.dispose();
  });

  it('records the default plan at the first start and lists it', async () => {
    const { plans } = await client.request(pricePlansQuery, {});
    expect(plans.find((p) => p.planId === 'default')?.current).toMatchObject({
      version: 1,
      cpuPerCoreHour: '6',
      memoryPerGibHour: '0',
      billing: 'used',
      effectiveFromMs: 0,
    });
  });

  it('refuses bad plans with the field and the rule, writing nothing', async () => {
    const refused = (body: unknown) =>
      client.requestRaw('mesh.api.credit-manager.set-price-plan', body).then(
        () => undefined,
        (err: RequestError) => err,
      );
    expect(await refused({ planId: 'bad', cpuPerCoreHour: '0' })).toMatchObject({
      code: 'invalid_input',
      issues: [{ field: 'cpuPerCoreHour', rule: 'must be greater than zero' }],
    });
    expect(await refused({ planId: 'bad', cpuPerCoreHour: '-1' })).toMatchObject({
      code: 'invalid_input',
      issues: [{ field: 'cpuPerCoreHour', rule: 'must not be negative' }],
    });
    expect(await refused({ planId: 'bad', cpuPerCoreHour: '1', functionId: 'ghost' })).toMatchObject({ code: 'unknown_function' });
    expect(await raw.read('meter-plan_bad')).toEqual([]);
  });

  it('samples -> charges -> ledger debits -> standing changes, across a restart of the credit-manager', async () => {
    const walletId = 'alice';
    await client.request(openWalletRequest, { walletId, maxDebt: '0.01', minBalance: '0.005', policy: 'greedy' });
    await standingIs(walletId, 'overdrawn'); // opened with 0: in debt range, not dispatchable
    await client.request(depositRequest, { walletId, amount: '0.0125', reference: 'dep-1' });
    await standingIs(walletId, 'normal');
    await container('ca', walletId);

    // 3 cores for 1 s (+ a few ns so the price is not a whole number of minor units): ~0.005 GRC each.
    const cpu = [3_000_000_007, 3_000_000_011, 3_000_000_013, 2_999_999_999, 3_000_000_003, 3_000_000_001];
    await sample('ca', walletId, 1, cpu[0], { taskId: 't1' });
    await sample('ca', walletId, 2, cpu[1], { taskId: 't1' });
    await chargedCount('ca', 2);
    await standingIs(walletId, 'low'); // 0.0125 - ~0.01 = ~0.0025 <= minBalance

    await credit!.stop();
    credit = undefined;
    await sample('ca', walletId, 3, cpu[2], { taskId: 't1' }); // appended while the credit-manager is down
    await sample('ca', walletId, 4, cpu[3], { taskId: 't1' });
    // Forget where the consumers were: on restart every sample and wallet event is delivered again
    // (the worst case of redelivery), and only the two new samples may be charged.
    const jsm = await raw.connection.jetstreamManager();
    await jsm.consumers.delete(EVENTS_STREAM, 'credit-manager_usage');
    await jsm.consumers.delete(EVENTS_STREAM, 'credit-manager_wallet');
    credit = await startService(CreditManagerService, env());
    await chargedCount('ca', 4);
    await standingIs(walletId, 'overdrawn');
    await sample('ca', walletId, 5, cpu[4], { taskId: 't1' });
    await standingIs(walletId, 'suspended');
    await sample('ca', walletId, 6, cpu[5], { taskId: 't1' }); // the final window after the abort is still charged

    await chargedCount('ca', 6);
    const all = await charges('ca');
    expect(all.map((c) => c.sampleSeq)).toEqual([1, 2, 3, 4, 5, 6]); // each once, in order, none lost
    const charged = all.reduce((sum, c) => sum + parseAmount(c.amount, undefined, { allowZero: true }), 0n);
    expect(charged).toBe(exactMinor(cpu.reduce((s, c) => s + BigInt(c), 0n)));
    expect(all.at(-1)!.totalAmount).toBe((await client.request(chargesQuery, { containerId: 'ca' })).totals.amount);

    // The ledger posted every charge; the balance is the deposit minus exactly what was charged.
    const expected = parseAmount('0.0125') - charged;
    await eventually(
      async () => {
        const b = await client.request(balanceRequest, { walletId });
        return parseAmount(b.balance, undefined, { allowNegative: true, allowZero: true }) === expected ? true : undefined;
      },
      15_000,
      'ledger balance',
    );

    // A deposit that repays the debt lifts the suspension.
    await client.request(depositRequest, { walletId, amount: '0.05', reference: 'dep-2' });
    await standingIs(walletId, 'normal');
    const history = await client.request(walletStandingQuery, { walletId });
    expect(history.history.map((h) => `${h.from}->${h.to}`)).toEqual([
      'null->overdrawn',
      'overdrawn->normal',
      'normal->low',
      'low->overdrawn',
      'overdrawn->suspended',
      'suspended->normal',
    ]);
    expect(history.standing).toBe('normal');
    // The suspension came from the balance the ledger posted, and went at most one sample beyond max debt.
    const suspended = history.history.find((h) => h.to === 'suspended')!;
    const overshoot = -parseAmount(suspended.balance, undefined, { allowNegative: true }) - parseAmount('0.01');
    expect(overshoot).toBeGreaterThanOrEqual(0n);
    expect(overshoot).toBeLessThan(exactMinor(BigInt(cpu[4])) + 1n);

    const byTask = await client.request(chargesQuery, { taskId: 't1' });
    expect(byTask.totals).toMatchObject({ charges: 6, anomalies: 0 });
  });

  it('records a sample of an unknown container as an anomaly and charges no one', async () => {
    await client.request(openWalletRequest, { walletId: 'bob', maxDebt: '0.5' });
    await client.request(depositRequest, { walletId: 'bob', amount: '1', reference: 'bob-1' });
    await sample('ghost', 'bob', 1, 3_000_000_000);
    await eventually(async () => (await raw.read('meter-ghost')).length > 0 || undefined, 15_000, 'anomaly');
    const meter = await raw.read('meter-ghost');
    expect(meter.map((e) => [e.type, isEvent(e, UsageAnomalyRecorded) ? e.data.reason : undefined])).toEqual([['UsageAnomalyRecorded', 'unknown-container']]);
    expect((await client.request(balanceRequest, { walletId: 'bob' })).balance).toBe('1');
  });

  it('a policy change alone moves the standing (new thresholds, same balance)', async () => {
    await standingIs('bob', 'normal');
    await client.request(setPolicyRequest, { walletId: 'bob', minBalance: '2' });
    await standingIs('bob', 'low');
    const last = (await client.request(walletStandingQuery, { walletId: 'bob' })).history.at(-1)!;
    expect(last).toMatchObject({ from: 'normal', to: 'low', balance: '1', minBalance: '2' });
    const cause = (await raw.read('wallet-bob'))[last.causeRevision];
    expect(cause).toMatchObject({ id: last.causeEventId, type: 'WalletPolicyChanged' });
  });

  it('dead-letters a sample that breaks its contract (window ending before it starts, negative CPU) and charges nothing', async () => {
    await container('cbad', 'bob');
    const js = raw.connection.jetstream();
    const bad = [
      { seq: 1, windowStartMs: 2000, windowEndMs: 1000, cpuNanos: 5 },
      { seq: 2, windowStartMs: 1000, windowEndMs: 2000, cpuNanos: -5 },
    ];
    for (const b of bad) {
      const hd = headers();
      hd.set('Nats-Msg-Id', `cbad-${b.seq}`);
      hd.set('Mesh-Type', 'ResourceSampled');
      hd.set('Mesh-Revision', String(b.seq - 1));
      const envelope = {
        id: `cbad-${b.seq}`,
        type: 'ResourceSampled',
        stream: 'usage-cbad',
        occurredAt: new Date().toISOString(),
        schemaVersion: 1,
        correlationId: 'x',
        causationId: 'x',
        data: { ...sampleEvent('cbad', 'bob', b.seq, 1).data, ...b },
      };
      await js.publish('mesh.events.usage.cbad', Buffer.from(JSON.stringify(envelope)), { headers: hd });
    }
    const dead = await eventually(
      async () => {
        const letters = (await raw.read('deadletter-credit-manager'))
          .filter((e) => isEvent(e, MessageDeadLettered))
          .map((e) => e.data)
          .filter((d) => d.eventId?.startsWith('cbad-'));
        return letters.length === 2 ? letters : undefined;
      },
      15_000,
      'dead letters',
    );
    expect(dead.map((d) => d.error).join('\n')).toMatch(/windowEndMs[\s\S]*cpuNanos/);
    expect(await raw.read('meter-cbad')).toEqual([]);
  });

  it('prices a function with its own plan; a plan change applies from its time on', async () => {
    const spec = {
      functionId: 'f2',
      version: 1,
      image: 'mesh/task-base:latest',
      script: 'echo',
      cpuMinMillis: 250,
      cpuMaxMillis: 4000,
      cpuInitialMillis: 1000,
      memoryBytes: 128 * MiB,
      timeoutMs: 60_000,
      network: false,
      maxAttempts: 1,
    };
    await raw.append('function-f2', [{ id: 'deployed-f2-1', type: 'FunctionDeployed', data: spec }], 'no_stream');
    const set = (cpuPerCoreHour: string, effectiveFromMs: number) =>
      client.requestRaw('mesh.api.credit-manager.set-price-plan', { planId: 'f2-plan', cpuPerCoreHour, functionId: 'f2', effectiveFromMs }) as Promise<{
        changed: boolean;
        plan: { version: number };
      }>;
    expect(await set('12', 0)).toMatchObject({ changed: true, plan: { version: 1 } });
    expect(await set('12', 0)).toMatchObject({ changed: false, plan: { version: 1 } });
    // From the window of seq 3 on (see sampleEvent's times) the price is 24.
    expect(await set('24', 1_700_000_003_000)).toMatchObject({ changed: true, plan: { version: 2 } });
    await client.request(openWalletRequest, { walletId: 'carol' });
    await client.request(depositRequest, { walletId: 'carol', amount: '5', reference: 'carol-1' });
    await container('cf2', 'carol', 'f2');
    for (let seq = 1; seq <= 4; seq++) await sample('cf2', 'carol', seq, 1_000_000_000, { functionId: 'f2' });
    await chargedCount('cf2', 4);
    const list = await charges('cf2');
    expect(list.map((c) => `${c.planId}@${c.planVersion}`)).toEqual(['f2-plan@1', 'f2-plan@1', 'f2-plan@2', 'f2-plan@2']);
    const total = list.reduce((sum, c) => sum + parseAmount(c.amount, undefined, { allowZero: true }), 0n);
    // floor of the exact sum (not the sum of floors): the carried remainder crosses the price change.
    expect(total).toBe((2_000_000_000n * parseAmount('12') + 2_000_000_000n * parseAmount('24')) / 3_600_000_000_000n);
    const { functions } = await client.request(pricePlansQuery, {});
    expect(functions).toContainEqual({ functionId: 'f2', planId: 'f2-plan', planVersion: 2 });
  });
});
