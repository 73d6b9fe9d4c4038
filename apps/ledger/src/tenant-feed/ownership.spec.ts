import { OPERATOR_OWNER, type RecordedEvent } from '@mesh/contracts';
import { ownerOfFirstEvent, ownerRefOf, tenantOfOwner } from './ownership';
import { TenantOwners } from './tenant-owners';

type Seen = Pick<RecordedEvent, 'type' | 'stream' | 'data'>;
const ev = (stream: string, type: string, data: Record<string, unknown>): Seen => ({ stream, type, data });

// The events of one tenant's life, one per kind of stream (only the fields ownership reads).
const aliceWallet = ev('wallet-w-alice', 'WalletOpened', { walletId: 'w-alice', tenantId: 'alice' });
const bobWallet = ev('wallet-w-bob', 'WalletOpened', { walletId: 'w-bob', tenantId: 'bob' });
const operatorWallet = ev('wallet-provider', 'WalletOpened', { walletId: 'provider' });
const aliceTask = ev('task-t-alice', 'TaskSubmitted', { taskId: 't-alice', walletId: 'w-alice', functionId: 'f', tenantId: 'alice' });
const operatorTask = ev('task-t-op', 'TaskSubmitted', { taskId: 't-op', walletId: 'provider', functionId: 'f' });

/**
 * Given the events the feed has seen (and the log holding them, for lookups), when `event` passes,
 * then its owner is `owner` (a tenant id, OPERATOR_OWNER, or undefined for nobody's).
 */
function given(seen: Seen[], options: { log?: Seen[]; maxPerKind?: number } = {}) {
  const log = options.log ?? seen;
  const reads: string[] = [];
  const owners = new TenantOwners(async (stream) => {
    reads.push(stream);
    return log.find((e) => e.stream === stream);
  }, options.maxPerKind);
  const learned = (async () => {
    for (const e of seen) await owners.ownerOf(e);
  })();
  return {
    when: (event: Seen) => ({
      then: async (owner: string | undefined, expectedReads?: string[]) => {
        await learned;
        const before = reads.length;
        expect(await owners.ownerOf(event)).toBe(owner);
        if (expectedReads) expect(reads.slice(before)).toEqual(expectedReads);
      },
    }),
  };
}

describe('tenant feed: who owns an event', () => {
  it('wallet events belong to the tenant that opened the wallet; an operator wallet to the operator', async () => {
    await given([]).when(aliceWallet).then('alice');
    await given([aliceWallet])
      .when(ev('wallet-w-alice', 'FundsDeposited', { walletId: 'w-alice' }))
      .then('alice', []);
    await given([operatorWallet])
      .when(ev('wallet-provider', 'UsageCredited', { walletId: 'provider' }))
      .then(OPERATOR_OWNER);
  });

  it('functions and tasks belong to the tenant named when they were created; later task events to the task owner', async () => {
    await given([])
      .when(ev('function-f1', 'FunctionDeployed', { functionId: 'f1', tenantId: 'bob' }))
      .then('bob');
    await given([])
      .when(ev('function-f2', 'FunctionDeployed', { functionId: 'f2' }))
      .then(OPERATOR_OWNER);
    await given([aliceTask])
      .when(ev('task-t-alice', 'TaskSucceeded', { taskId: 't-alice' }))
      .then('alice', []);
    await given([operatorTask])
      .when(ev('task-t-op', 'TaskDispatched', { taskId: 't-op' }))
      .then(OPERATOR_OWNER);
  });

  it('container, usage, scaling, standing and charge events belong to the owner of the wallet they name', async () => {
    const ref = { containerId: 'c1', nodeId: 'n1', walletId: 'w-bob', functionId: 'f1' };
    for (const event of [
      ev('container-c1', 'ContainerStarted', ref),
      ev('usage-c1', 'ResourceSampled', { ...ref, seq: 1 }),
      ev('scaling-c1', 'ScalingDecided', { ...ref, decisionId: 'd1' }),
      ev('standing-w-bob', 'StandingChanged', { walletId: 'w-bob' }),
      ev('meter-c1', 'UsageCharged', { ...ref, chargeId: 'ch1' }),
      ev('meter-c1', 'UsageAnomalyRecorded', { containerId: 'c1', walletId: 'w-bob' }),
    ]) {
      await given([aliceWallet, bobWallet]).when(event).then('bob', []);
    }
  });

  it('execution events belong to the owner of their task', async () => {
    const execution = ev('execution-e1', 'ExecutionStarted', { executionId: 'e1', taskId: 't-alice', walletId: 'w-alice', containerId: 'c1' });
    await given([aliceTask]).when(execution).then('alice', []);
  });

  it("nodes, price plans and an anomaly of an unknown container are nobody's: never on a tenant feed", async () => {
    await given([])
      .when(ev('node-n1', 'NodeRegistered', { nodeId: 'n1' }))
      .then(undefined, []);
    await given([])
      .when(ev('meter-plan_default', 'PricePlanSet', { planId: 'default' }))
      .then(undefined, []);
    await given([])
      .when(ev('meter-c9', 'UsageAnomalyRecorded', { containerId: 'c9', reason: 'unknown-container' }))
      .then(undefined, []);
    await given([])
      .when(ev('deadletter-ledger', 'MessageDeadLettered', {}))
      .then(undefined, []);
  });

  it('an owner not seen by this process (a restart, another category ahead) is read from the stream’s first event', async () => {
    const started = ev('container-c1', 'ContainerStarted', { containerId: 'c1', walletId: 'w-alice' });
    await given([], { log: [aliceWallet] })
      .when(started)
      .then('alice', ['wallet-w-alice']);
    const failed = ev('execution-e2', 'ExecutionFailed', { executionId: 'e2', taskId: 't-alice' });
    await given([], { log: [aliceTask] })
      .when(failed)
      .then('alice', ['task-t-alice']);
  });

  it('an evicted owner is read again from the log; the maps never hold more than their bound', async () => {
    const deposited = ev('wallet-w-alice', 'FundsDeposited', { walletId: 'w-alice' });
    // Bound 1: bob's wallet evicts alice's, so alice's owner is read from wallet-w-alice's first event, once.
    const feed = given([aliceWallet, bobWallet], { maxPerKind: 1 });
    await feed.when(deposited).then('alice', ['wallet-w-alice']);
    await feed.when(deposited).then('alice', []);
  });

  it('an unknown wallet or task has no owner, and is looked up again next time (it may be created later)', async () => {
    const charged = ev('meter-c1', 'UsageCharged', { containerId: 'c1', walletId: 'w-new' });
    const feed = given([], { log: [] });
    await feed.when(charged).then(undefined, ['wallet-w-new']);
    await feed.when(charged).then(undefined, ['wallet-w-new']);
  });

  it('the owner recorded by a stream is only that of its creating event', () => {
    expect(ownerOfFirstEvent('wallet', aliceWallet)).toBe('alice');
    expect(ownerOfFirstEvent('wallet', operatorWallet)).toBe(OPERATOR_OWNER);
    expect(ownerOfFirstEvent('task', aliceTask)).toBe('alice');
    expect(ownerOfFirstEvent('wallet', ev('wallet-w-alice', 'FundsDeposited', { walletId: 'w-alice', tenantId: 'mallory' }))).toBeUndefined();
  });

  it('only tenants get a feed: the operator and nobody do not', () => {
    expect([tenantOfOwner('alice'), tenantOfOwner(OPERATOR_OWNER), tenantOfOwner(undefined)]).toEqual(['alice', undefined, undefined]);
    expect(ownerRefOf(ev('usage-c1', 'ResourceSampled', { walletId: 'w-bob' }))).toEqual({ kind: 'wallet', id: 'w-bob' });
  });
});
