import { InMemoryEventStore } from '@mesh/eventstore';
import { decodeChunks } from '@mesh/eventstore/snapshot-store';
import { InMemorySnapshotStore } from '@mesh/eventstore/snapshot-store';
import { UncreditedDebits } from '../domain/uncredited-debits';
import { WalletHandler } from '../wallet.handler';
import { LedgerProjection } from './ledger-projection';
import { STATEMENT_LINES_IN_SNAPSHOT, encodeLedgerSnapshot, loadLedgerState, restoreLedgerSnapshot } from './ledger-snapshot';
import { LedgerQueries } from './queries';

const quiet = { log: () => undefined, warn: () => undefined };

async function givenABook() {
  const store = new InMemoryEventStore();
  const book = new WalletHandler(store, 10);
  const open = (walletId: string, kind: 'user' | 'provider', tenantId?: string) =>
    book.execute({ type: 'OpenWallet', walletId, kind, currency: 'GRC', maxDebt: 50_000_000n, minBalance: 0n, policy: 'greedy', atMs: 1, tenantId });
  await open('alice', 'user', 'acme');
  await open('prov', 'provider');
  await book.execute({ type: 'Deposit', walletId: 'alice', amount: 123_456_789_012_345_678n, reference: 'tx1' });
  const debit = (chargeId: string) =>
    book.execute({
      type: 'PostDebit',
      walletId: 'alice',
      chargeId,
      amount: 7n,
      currency: 'GRC',
      providerWalletId: 'prov',
      containerId: 'c1',
      functionId: 'f1',
      taskId: 't1',
    });
  await debit('ch-1');
  await debit('ch-2');
  await book.credit('prov', 'GRC', { chargeId: 'ch-2', amount: 7n, userWalletId: 'alice', containerId: 'c1', functionId: 'f1', taskId: 't1' });
  return { store, book, debit };
}

describe('ledger snapshot', () => {
  it('round-trips the projection and the uncredited debits, money as decimal strings', async () => {
    // Given a book with one debit left without its credit
    const { store } = await givenABook();
    const projection = new LedgerProjection();
    const uncredited = new UncreditedDebits();
    for (const e of store.log) {
      projection.apply(e);
      uncredited.observe(e);
    }
    // When it is encoded and restored
    const encoded = encodeLedgerSnapshot(projection, uncredited);
    const records = decodeChunks(encoded.chunks);
    const restored = restoreLedgerSnapshot(records);
    // Then it is the same state, and the money was stored as strings
    expect(restored.projection.wallets).toEqual(projection.wallets);
    // (the costs per task and container are not in it: read back on demand, queries.spec.ts)
    expect(restored.projection.tasks.size).toBe(0);
    expect(restored.projection.tasks.fromGenesis).toBe(false);
    expect(restored.projection.totals).toEqual(projection.totals);
    expect(restored.projection.owners).toEqual(new Map([['alice', 'acme']]));
    expect(restored.projection.walletsPerTenant).toEqual(new Map([['acme', 1]]));
    expect(restored.uncredited.list()).toEqual(uncredited.list());
    expect(restored.uncredited.list().map((d) => d.chargeId)).toEqual(['ch-1']);
    expect(JSON.stringify(records)).toContain('"balance":"123456789012345664"');
  });

  it('an uncredited debit older than the snapshot is still found after a start from it', async () => {
    // Given a snapshot taken after the uncredited debit, and a later debit
    const { store, debit } = await givenABook();
    const snapshots = new InMemorySnapshotStore();
    const first = await loadLedgerState(store, undefined, 'ledger.t.projection', quiet);
    await snapshots.save('ledger.t.projection', encodeLedgerSnapshot(first.projection, first.uncredited));
    await debit('ch-3');
    // When the ledger starts from the snapshot
    const started = await loadLedgerState(store, snapshots, 'ledger.t.projection', quiet);
    // Then it read only the tail and still owes both credits
    expect(started.from).toBe('snapshot');
    expect(started.replayed).toBe(1);
    expect(started.uncredited.list().map((d) => d.chargeId)).toEqual(['ch-1', 'ch-3']);
  });

  it('holds only the newest statement lines of each wallet; every statement after a start from it is exact (older lines read back from the stream)', async () => {
    // Given a wallet with more lines than the snapshot keeps (and a provider's credit lines), snapshotted
    const { store, book, debit } = await givenABook();
    const deposits = STATEMENT_LINES_IN_SNAPSHOT + 40;
    for (let i = 0; i < deposits; i++) await book.execute({ type: 'Deposit', walletId: 'alice', amount: BigInt(i + 1), reference: `d${i}` });
    const snapshots = new InMemorySnapshotStore();
    const first = await loadLedgerState(store, undefined, 'ledger.t.projection', quiet);
    expect(first.projection.wallet('alice').lines.length).toBe(deposits + 4);
    const encoded = encodeLedgerSnapshot(first.projection, first.uncredited);
    await snapshots.save('ledger.t.projection', encoded);
    // When more is posted and the ledger starts from the snapshot
    await debit('ch-3');
    await book.execute({ type: 'Deposit', walletId: 'alice', amount: 5n, reference: 'after' });
    const restored = await loadLedgerState(store, snapshots, 'ledger.t.projection', quiet);
    const full = await loadLedgerState(store, undefined, 'ledger.t.projection', quiet);
    // Then the snapshot held the newest lines only (plus the tail folded since)
    expect(restored.from).toBe('snapshot');
    expect(restored.projection.wallet('alice').lines.length).toBe(STATEMENT_LINES_IN_SNAPSHOT + 2);
    expect(restored.projection.wallet('alice').lines[0].revision).toBe(full.projection.wallet('alice').revision - STATEMENT_LINES_IN_SNAPSHOT - 1);
    // And every statement answer, in memory, read back or across both, is the full replay's
    const fromSnapshot = new LedgerQueries(restored.projection, store);
    const fromLog = new LedgerQueries(full.projection, store);
    const asks: [string, number | undefined, number | undefined][] = [
      ['alice', undefined, undefined], // the default (newest lines): from memory
      ['alice', 1000, undefined], // all of them: read back
      ['alice', 3, -1], // the oldest: read back
      ['alice', 50, 30], // a window before the lines held
      ['alice', 100, 60], // a window across what is read back and what is held
      ['alice', 10, deposits], // a window of the lines held
      ['prov', 100, undefined],
    ];
    for (const [walletId, limit, after] of asks) {
      // (each on a fresh start: a read back keeps the older lines in memory, tested below)
      const again = await loadLedgerState(store, snapshots, 'ledger.t.projection', quiet);
      const answer = await new LedgerQueries(again.projection, store).statement(walletId, limit, after);
      expect(answer).toEqual(await fromLog.statement(walletId, limit, after));
      expect(answer.lines.length).toBeGreaterThan(0);
    }
    // And the first statement that reads back keeps the older lines in memory: the next is served from it, the same
    const read = jest.spyOn(store, 'read');
    const all = await fromSnapshot.statement('alice', 1000);
    expect(all.lines.map((l) => l.revision)).toEqual(Array.from({ length: deposits + 6 }, (_, i) => i));
    expect(read).toHaveBeenCalledTimes(1);
    expect(restored.projection.wallet('alice').lines).toEqual(full.projection.wallet('alice').lines);
    expect(await fromSnapshot.statement('alice', 50, 30)).toEqual(await fromLog.statement('alice', 50, 30));
    expect(await fromSnapshot.statement('alice', 1000)).toEqual(all);
    expect(read).toHaveBeenCalledTimes(1);
    read.mockRestore();
  });

  it('refuses a malformed record, naming it', () => {
    expect(() => restoreLedgerSnapshot([{ k: 'head', position: '5', walletEvents: 1, totals: {} }])).toThrow(
      'ledger snapshot: head.totals.deposited must be a string',
    );
    expect(() => restoreLedgerSnapshot([{ k: 'head', position: 'x', walletEvents: 1, totals: {} }])).toThrow(
      'ledger snapshot: head.position must be a decimal integer string',
    );
  });
});
