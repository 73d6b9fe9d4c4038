import { CREDIT_BATCH_MAX, DomainError, formatAmount } from '@mesh/contracts';
import { WalletHandler } from '../wallet.handler';
import { InMemoryEventStore } from '@mesh/eventstore';
import { usageChargedData } from '@mesh/testing/ledger';
import { UncreditedDebits } from '../domain/uncredited-debits';
import { CostViews } from './cost-views';
import { LedgerProjection, STATEMENT_LINES_IN_MEMORY } from './ledger-projection';
import { encodeLedgerSnapshot, restoreLedgerSnapshot } from './ledger-snapshot';
import { decodeChunks } from '@mesh/eventstore/snapshot-store';
import { LedgerQueries, STATEMENT_BYTES_MAX } from './queries';

async function ledger() {
  const store = new InMemoryEventStore();
  const book = new WalletHandler(store, 10);
  await book.execute({ type: 'OpenWallet', walletId: 'alice', kind: 'user', currency: 'GRC', maxDebt: 50_000_000n, minBalance: 0n, policy: 'greedy', atMs: 1 });
  await book.execute({ type: 'OpenWallet', walletId: 'provider', kind: 'provider', currency: 'GRC', maxDebt: 0n, minBalance: 0n, policy: 'greedy', atMs: 1 });
  const projection = new LedgerProjection();
  const queries = new LedgerQueries(projection, store);
  const sync = () => store.log.forEach((e) => projection.apply(e));
  return { store, book, projection, queries, sync };
}

const links = { containerId: 'c1', functionId: 'f1', taskId: 't1', currency: 'GRC' };

describe('ledger queries', () => {
  it('balance reports available funds and debt, and the position it reflects', async () => {
    const { book, queries, sync, store } = await ledger();
    await book.execute({ type: 'Deposit', walletId: 'alice', amount: 10_000_000n, reference: 'tx1' });
    await book.execute({ type: 'PostDebit', walletId: 'alice', chargeId: 'ch-1', amount: 30_000_000n, providerWalletId: 'provider', ...links });
    sync();
    expect(queries.balance('alice')).toEqual({
      walletId: 'alice',
      kind: 'user',
      currency: 'GRC',
      balance: '-0.2',
      available: '0',
      debt: '0.2',
      maxDebt: '0.5',
      minBalance: '0',
      policy: 'greedy',
      revision: 2,
      position: String(store.log.length),
    });
    expect(() => queries.balance('nobody')).toThrow(DomainError);
  });

  it('statement: latest lines, a window after a revision, and lines older than memory read back from the stream', async () => {
    const { book, queries, sync } = await ledger();
    const deposits = STATEMENT_LINES_IN_MEMORY + 50;
    for (let i = 0; i < deposits; i++) await book.execute({ type: 'Deposit', walletId: 'alice', amount: 1n, reference: `tx${i}` });
    sync();
    const latest = await queries.statement('alice', 3);
    expect(latest.total).toBe(deposits + 1);
    expect(latest.lines.map((l) => [l.revision, l.balanceAfter])).toEqual([deposits - 2, deposits - 1, deposits].map((r) => [r, formatAmount(BigInt(r))]));
    const oldest = await queries.statement('alice', 2, -1);
    expect(oldest.lines.map((l) => [l.revision, l.type, l.amount, l.cause.kind])).toEqual([
      [0, 'WalletOpened', '0', 'open'],
      [1, 'FundsDeposited', '0.00000001', 'deposit'],
    ]);
    expect(oldest.lines[1].cause.reference).toBe('tx0');
    expect((await queries.statement('alice', 1000, 100)).lines.map((l) => l.revision)).toEqual(Array.from({ length: 1000 }, (_, i) => 101 + i));
  });

  it('costs per task and container, provider earnings and totals', async () => {
    const { book, queries, sync } = await ledger();
    await book.execute({ type: 'Deposit', walletId: 'alice', amount: 100_000_000n, reference: 'tx1' });
    const charges = [
      ['ch-1', 'c1', 't1', 10n],
      ['ch-2', 'c1', 't2', 20n],
      ['ch-3', 'c2', 't2', 30n],
    ] as const;
    for (const [chargeId, containerId, taskId, amount] of charges) {
      await book.execute({ type: 'PostDebit', walletId: 'alice', chargeId, amount, providerWalletId: 'provider', ...links, containerId, taskId });
    }
    // Credited at once: the book group-commits them into one UsageCredited.
    await Promise.all(
      charges.map(([chargeId, containerId, taskId, amount]) =>
        book.credit('provider', 'GRC', { chargeId, amount, userWalletId: 'alice', functionId: 'f1', containerId, taskId }),
      ),
    );
    await book.execute({ type: 'Withdraw', walletId: 'alice', amount: 1_000_000n, reference: 'w1' });
    sync();
    expect(await queries.taskCost('t2')).toMatchObject({
      walletId: 'alice',
      total: '0.0000005',
      charges: 2,
      containers: [
        { containerId: 'c1', total: '0.0000002' },
        { containerId: 'c2', total: '0.0000003' },
      ],
    });
    expect(await queries.taskCost('unknown')).toMatchObject({ total: '0', charges: 0, containers: [] });
    expect(await queries.containerCost('c1')).toMatchObject({
      functionId: 'f1',
      total: '0.0000003',
      tasks: [
        { taskId: 't1', total: '0.0000001' },
        { taskId: 't2', total: '0.0000002' },
      ],
    });
    const credits = (await queries.statement('provider', 10)).lines.filter((l) => l.cause.kind === 'usage-credit');
    expect(credits.map((l) => [l.amount, l.cause.charges!.map((c) => c.chargeId)])).toEqual([['0.0000006', ['ch-1', 'ch-2', 'ch-3']]]);
    expect(credits[0].cause.charges![2]).toEqual({
      chargeId: 'ch-3',
      amount: '0.0000003',
      counterpartyWalletId: 'alice',
      containerId: 'c2',
      taskId: 't2',
      functionId: 'f1',
    });
    expect(queries.providerEarnings()).toMatchObject({ providers: [{ walletId: 'provider', earned: '0.0000006', charges: 3, balance: '0.0000006' }] });
    expect(() => queries.providerEarnings('alice')).toThrow(/not a provider wallet/);
    expect(queries.totals()).toMatchObject({
      wallets: 2,
      userWallets: 1,
      providerWallets: 1,
      deposited: '1',
      withdrawn: '0.01',
      debited: '0.0000006',
      credited: '0.0000006',
      userBalances: '0.9899994',
      providerBalances: '0.0000006',
      debt: '0',
    });
  });

  it('keeps a statement answer within STATEMENT_BYTES_MAX, newest lines first or oldest when paging, and says so', async () => {
    const { book, queries, sync } = await ledger();
    // 30 full credits of 200 charges each: ~40 KiB per line, more than 512 KiB in all.
    for (let batch = 0; batch < 30; batch++) {
      const charges = Array.from({ length: CREDIT_BATCH_MAX }, (_, i) => ({
        chargeId: `ch-${batch}-${i}-${'x'.repeat(60)}`,
        amount: 1n,
        userWalletId: 'alice',
        containerId: `c-${'y'.repeat(60)}`,
        functionId: 'f1',
        taskId: `t-${'z'.repeat(60)}`,
      }));
      await book.execute({ type: 'PostCredits', walletId: 'provider', currency: 'GRC', charges });
    }
    sync();
    const latest = await queries.statement('provider', 1000);
    expect(latest.truncated).toBe(true);
    expect(latest.lines.length).toBeGreaterThan(0);
    expect(latest.lines.length).toBeLessThan(31);
    expect(latest.lines[latest.lines.length - 1].revision).toBe(30); // the newest kept
    expect(Buffer.byteLength(JSON.stringify(latest.lines))).toBeLessThanOrEqual(STATEMENT_BYTES_MAX);
    const paged = await queries.statement('provider', 1000, -1);
    expect(paged.truncated).toBe(true);
    expect(paged.lines[0].revision).toBe(0); // the oldest kept, the caller pages on after the last
    const rest = await queries.statement('provider', 1000, paged.lines[paged.lines.length - 1].revision);
    expect(rest.lines[0].revision).toBe(paged.lines[paged.lines.length - 1].revision + 1);
    expect((await queries.statement('provider', 2)).truncated).toBe(false);
  });

  it('ignores an event it has already folded in (same or older position)', async () => {
    const { book, projection, store, sync } = await ledger();
    await book.execute({ type: 'Deposit', walletId: 'alice', amount: 5n, reference: 'tx1' });
    sync();
    sync();
    expect(projection.wallet('alice').balance).toBe(5n);
    expect(projection.walletEvents).toBe(store.log.length);
  });

  it('costs not held in memory (a start from the snapshot) are read back from the paying wallet stream, the same as a fold of the whole log', async () => {
    // Given charges of two tasks in two containers, the task's and the container's own streams naming the wallet
    const { book, projection, queries, store, sync } = await ledger();
    await book.execute({ type: 'Deposit', walletId: 'alice', amount: 100_000_000n, reference: 'tx1' });
    await store.append(
      'task-t2',
      [{ id: 't2-cancelled', type: 'TaskCancelled', data: { taskId: 't2', functionId: 'f1', walletId: 'alice', reason: 'test' } }],
      'any',
    );
    for (const containerId of ['c1', 'c2']) {
      const data = {
        ...usageChargedData({ chargeId: `x-${containerId}`, sampleId: 'x', walletId: 'alice', providerWalletId: 'provider', amount: '0.1' }),
        containerId,
      };
      await store.append(`meter-${containerId}`, [{ id: `charged-x-${containerId}`, type: 'UsageCharged', data }], 'any');
    }
    const debit = (chargeId: string, containerId: string, taskId: string | undefined, amount: bigint) =>
      book.execute({ type: 'PostDebit', walletId: 'alice', chargeId, amount, providerWalletId: 'provider', ...links, containerId, taskId });
    await debit('ch-1', 'c1', 't1', 10n);
    await debit('ch-2', 'c2', 't2', 20n);
    await debit('ch-3', 'c1', undefined, 5n);
    sync();
    // When the ledger restarts from a snapshot (which holds no cost), then more debits come
    const restored = restoreLedgerSnapshot(decodeChunks(encodeLedgerSnapshot(projection, new UncreditedDebits()).chunks)).projection;
    const restoredQueries = new LedgerQueries(restored, store);
    await debit('ch-4', 'c1', 't2', 30n);
    sync();
    store.log.forEach((e) => restored.apply(e));
    // Then its answers are those of the projection folded from the log's start, position included
    expect(restored.tasks.size).toBe(0);
    for (const taskId of ['t2', 'unknown']) expect(await restoredQueries.taskCost(taskId)).toEqual(await queries.taskCost(taskId));
    for (const containerId of ['c1', 'c2']) expect(await restoredQueries.containerCost(containerId)).toEqual(await queries.containerCost(containerId));
    expect(await restoredQueries.taskCost('t2')).toMatchObject({
      walletId: 'alice',
      total: '0.0000005',
      charges: 2,
      containers: [{ containerId: 'c2' }, { containerId: 'c1' }],
    });
    // And once read back, a view is held and kept current by the live fold
    expect(restored.tasks.size).toBe(1);
    await debit('ch-5', 'c2', 't2', 1n);
    sync();
    store.log.forEach((e) => restored.apply(e));
    expect(await restoredQueries.taskCost('t2')).toEqual(await queries.taskCost('t2'));
    expect(await restoredQueries.taskCost('t2')).toMatchObject({ total: '0.00000051', charges: 3 });
  });

  it('holds at most its bound of cost views; once one is dropped, a debit of a key not held is left to the read on demand', () => {
    const views = new CostViews('task', 2);
    views.add('t1', 'c1', 1n, 'alice', 'f1', 'GRC');
    views.add('t2', 'c1', 2n, 'alice', 'f1', 'GRC');
    expect(views.fromGenesis).toBe(true);
    views.add('t3', 'c1', 3n, 'alice', 'f1', 'GRC');
    expect(views.size).toBe(2);
    expect(views.get('t1')).toBeUndefined();
    expect(views.fromGenesis).toBe(false);
    // t1 may have had debits before: a new debit of it does not start an incomplete view
    views.add('t1', 'c1', 4n, 'alice', 'f1', 'GRC');
    expect(views.get('t1')).toBeUndefined();
    views.add('t3', 'c2', 5n, 'alice', 'f1', 'GRC');
    expect(views.get('t3')).toMatchObject({ total: 8n, charges: 2 });
  });
});
