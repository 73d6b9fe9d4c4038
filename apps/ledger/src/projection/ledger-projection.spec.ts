import { InMemoryEventStore } from '@mesh/eventstore';
import { WalletHandler } from '../wallet.handler';
import { LedgerProjection } from './ledger-projection';

/** The projection against forged copies that pass the store's decode (valid data, a revision in the body). */
describe('ledger projection with forged wallet events', () => {
  async function givenAliceWithFive() {
    const store = new InMemoryEventStore();
    const book = new WalletHandler(store, 10);
    await book.execute({
      type: 'OpenWallet',
      walletId: 'alice',
      kind: 'user',
      currency: 'GRC',
      maxDebt: 50_000_000n,
      minBalance: 0n,
      policy: 'greedy',
      atMs: 1,
    });
    await book.execute({ type: 'OpenWallet', walletId: 'bob', kind: 'user', currency: 'GRC', maxDebt: 0n, minBalance: 0n, policy: 'greedy', atMs: 1 });
    await book.execute({ type: 'Deposit', walletId: 'alice', amount: 500_000_000n, reference: 'tx1' });
    const projection = new LedgerProjection();
    for (const event of store.log) projection.apply(event);
    return { store, projection };
  }

  it('given a copy of WalletOpened at a later position, when it is applied, then the wallet is not reset', async () => {
    const { store, projection } = await givenAliceWithFive();
    const opened = store.log.find((e) => e.stream === 'wallet-alice' && e.type === 'WalletOpened')!;
    projection.apply({ ...opened, position: projection.position + 1n });
    expect(projection.wallet('alice')).toMatchObject({ balance: 500_000_000n, revision: 1 });
  });

  it("given a wallet event on another wallet's stream, when it is applied, then neither wallet moves", async () => {
    const { store, projection } = await givenAliceWithFive();
    const deposit = store.log.find((e) => e.stream === 'wallet-alice' && e.type === 'FundsDeposited')!;
    projection.apply({ ...deposit, stream: 'wallet-bob', revision: 1, position: projection.position + 1n });
    expect(projection.wallet('alice')).toMatchObject({ balance: 500_000_000n, revision: 1 });
    expect(projection.wallet('bob')).toMatchObject({ balance: 0n, revision: 0 });
    expect(projection.totals.deposited).toBe(500_000_000n);
  });
});
