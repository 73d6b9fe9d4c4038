import { InMemoryEventStore } from '@mesh/eventstore';
import { decodeChunks } from '@mesh/eventstore/snapshot-store';
import { InMemorySnapshotStore } from '@mesh/eventstore/snapshot-store';
import { UncreditedDebits } from '../domain/uncredited-debits';
import { WalletHandler } from '../wallet.handler';
import { LedgerProjection } from './ledger-projection';
import { encodeLedgerSnapshot, loadLedgerState, restoreLedgerSnapshot } from './ledger-snapshot';

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

  it('refuses a malformed record, naming it', () => {
    expect(() => restoreLedgerSnapshot([{ k: 'head', position: '5', walletEvents: 1, totals: {} }])).toThrow(
      'ledger snapshot: head.totals.deposited must be a string',
    );
    expect(() => restoreLedgerSnapshot([{ k: 'head', position: 'x', walletEvents: 1, totals: {} }])).toThrow(
      'ledger snapshot: head.position must be a decimal integer string',
    );
  });
});
