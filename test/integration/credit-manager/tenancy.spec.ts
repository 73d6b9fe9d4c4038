import {
  FunctionDeployed,
  FUNCTION_DEFAULTS,
  WalletOpened,
  chargesQuery,
  eventOf,
  isEvent,
  pricePlansQuery,
  setPricePlanRequest,
  tenantSubject,
  walletStandingQuery,
  StandingChanged,
  UsageCharged,
} from '@mesh/contracts';
import { JetStreamEventStore } from '@mesh/eventstore';
import { MeshClient, RequestError, startService, type RunningService } from '@mesh/runtime';
import { NatsServerProcess, containerStartedEvent, eventually, resourceSampledEvent } from '@mesh/testing';
import { CreditManagerService } from '../../../apps/credit-manager/src/main';

const MiB = 1024 * 1024;

/**
 * Tenants and the credit-manager on a real nats-server (no NATS auth: the subject carries the
 * caller). The ledger and the container-managers are played by appending their events: alice and
 * bob each own a wallet, alice's container `ca` runs her task `ta` and is charged.
 */
describe('credit-manager tenancy on NATS', () => {
  let server: NatsServerProcess;
  let credit: RunningService;
  let raw: JetStreamEventStore;
  let operator: MeshClient;
  let alice: MeshClient;
  let bob: MeshClient;

  const openWallet = (walletId: string, tenantId: string) =>
    raw.append(
      `wallet-${walletId}`,
      [
        eventOf(WalletOpened, `${walletId}-opened`, {
          walletId,
          currency: 'GRC',
          balanceAfter: '0',
          prevHash: '0'.repeat(64),
          kind: 'user',
          maxDebt: '0.5',
          minBalance: '0',
          policy: 'greedy',
          openedAtMs: Date.now(),
          tenantId,
        }),
      ],
      'no_stream',
    );
  const deployed = (functionId: string, tenantId?: string) =>
    raw.append(
      `function-${functionId}`,
      [
        eventOf(FunctionDeployed, `${functionId}-v1`, {
          functionId,
          version: 1,
          image: 'mesh/task-base:latest',
          script: 'true',
          ...FUNCTION_DEFAULTS,
          ...(tenantId ? { tenantId } : {}),
        }),
      ],
      'no_stream',
    );

  /** The request is refused with `code` (matching `message`) and the log did not move. */
  async function refused(request: () => Promise<unknown>, code: string, message: RegExp): Promise<void> {
    const before = await raw.headPosition();
    const err: unknown = await request().then(
      (reply) => new Error(`accepted: ${JSON.stringify(reply)}`),
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(RequestError);
    expect(err).toMatchObject({ code, message: expect.stringMatching(message) as string });
    expect(await raw.headPosition()).toBe(before);
  }

  beforeAll(async () => {
    server = await NatsServerProcess.start();
    const nc = await server.connect('credit-tenancy-test');
    raw = await JetStreamEventStore.connect(nc);
    operator = new MeshClient(nc);
    alice = new MeshClient(nc, 5000, 'alice');
    bob = new MeshClient(nc, 5000, 'bob');
    credit = await startService(CreditManagerService, { NATS_URL: server.url, LOG_LEVEL: 'error' });
    await credit.nc.flush();
    await openWallet('w-alice', 'alice');
    await openWallet('w-bob', 'bob');
    await deployed('a-fn', 'alice');
    await deployed('b-fn', 'bob');
    await deployed('pub');
    const ref = { containerId: 'ca', nodeId: 'n1', walletId: 'w-alice', functionId: 'a-fn' };
    await raw.append('container-ca', [containerStartedEvent(ref, { cpuMillis: 1000, memoryBytes: 64 * MiB })], 'no_stream');
    const figures = { seq: 1, windowEndMs: Date.now(), cpuNanos: 1_000_000_000, memoryBytes: 8 * MiB, cpuLimitMillis: 1000, memoryLimitBytes: 64 * MiB };
    await raw.append('usage-ca', [resourceSampledEvent(ref, { ...figures, taskId: 'ta' })], 'no_stream');
    // Wait for everything the credit-manager writes by itself, so a refusal's "no event" is measurable.
    await eventually(async () => (await raw.read('meter-ca')).some((e) => isEvent(e, UsageCharged)), 15_000, 'the charge of ca');
    for (const walletId of ['w-alice', 'w-bob']) {
      await eventually(async () => (await raw.read(`standing-${walletId}`)).some((e) => isEvent(e, StandingChanged)), 15_000, `${walletId} standing`);
    }
    await eventually(async () => (await operator.request(pricePlansQuery, {})).functions.length === 3, 15_000, 'the plans of the three functions');
  }, 60_000);

  afterAll(async () => {
    await credit?.stop();
    await raw?.connection.close();
    await server?.dispose();
  });

  it('shows alice her own standing and charges', async () => {
    const standing = await alice.request(walletStandingQuery, { walletId: 'w-alice' });
    expect(standing).toMatchObject({ walletId: 'w-alice', standing: 'overdrawn' }); // opened with 0: in the debt range
    expect(standing).toEqual(await operator.request(walletStandingQuery, { walletId: 'w-alice' }));
    const byContainer = await alice.request(chargesQuery, { containerId: 'ca' });
    expect(byContainer.charges.map((c) => c.walletId)).toEqual(['w-alice']);
    const byTask = await alice.request(chargesQuery, { taskId: 'ta' });
    expect(byTask.totals.charges).toBe(1);
  });

  it("refuses bob alice's standing and charges, writing nothing", async () => {
    await refused(
      () => bob.request(walletStandingQuery, { walletId: 'w-alice' }),
      'forbidden',
      /^forbidden: tenant bob may not read the standing of wallet w-alice$/,
    );
    await refused(() => bob.request(chargesQuery, { containerId: 'ca' }), 'forbidden', /^forbidden: tenant bob may not read the charges of wallet w-alice$/);
    await refused(() => bob.request(chargesQuery, { taskId: 'ta' }), 'forbidden', /tenant bob may not read the charges of wallet w-alice/);
    await refused(() => bob.request(walletStandingQuery, { walletId: 'nobody' }), 'unknown_wallet', /^no wallet nobody$/);
  });

  it('lets a tenant read the plans (with the plans of its own and public functions only) but not set one', async () => {
    const plans = await alice.request(pricePlansQuery, {});
    expect(plans.plans.map((p) => p.planId)).toContain('default');
    expect(plans.functions.map((f) => f.functionId)).toEqual(['a-fn', 'pub']);
    expect((await operator.request(pricePlansQuery, {})).functions.map((f) => f.functionId)).toEqual(['a-fn', 'b-fn', 'pub']);
    // set-price-plan is operator-only: nobody answers it on a tenant subject (and NATS refuses the publish in production)
    await refused(
      () => alice.requestRaw(tenantSubject('alice', setPricePlanRequest.subject), { planId: 'cheap', cpuPerCoreHour: '0.01' }, 2000),
      'no_responders',
      /no service answers/,
    );
    expect(await raw.read('meter-plan_cheap')).toEqual([]);
  });
});
