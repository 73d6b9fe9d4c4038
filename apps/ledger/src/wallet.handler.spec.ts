import { FundsDeposited, isEvent } from '@mesh/contracts';
import { InvariantError } from './domain/invariant';
import { EventStoreInvariantError, InMemoryEventStore } from '@mesh/eventstore';
import { WalletHandler } from './wallet.handler';

describe('WalletHandler', () => {
  const opened = async () => {
    const store = new InMemoryEventStore();
    const wallets = new WalletHandler(store, 10);
    await wallets.execute({ type: 'OpenWallet', walletId: 'alice', kind: 'user', currency: 'GRC', maxDebt: 0n, minBalance: 0n, policy: 'greedy', atMs: 1 });
    await wallets.execute({ type: 'Deposit', walletId: 'alice', amount: 100n, reference: 'tx1' });
    return { store, wallets };
  };

  it('loads a wallet from its stream and carries on from its last revision', async () => {
    const { store, wallets } = await opened();
    wallets.forget();
    const result = await wallets.execute({ type: 'Deposit', walletId: 'alice', amount: 50n, reference: 'tx2' });
    expect(result.state).toMatchObject({ balance: 150n, revision: 2 });
    expect(store.log.map((e) => e.id)).toEqual(['open-alice', 'deposit-alice-tx1', 'deposit-alice-tx2']);
  });

  it('refuses to load a stream whose revisions are not contiguous (the store checks it on every read)', async () => {
    const { store, wallets } = await opened();
    store.log[1].revision = 2; // a gap, as a cut or reordered log would show
    wallets.forget();
    await expect(wallets.state('alice')).rejects.toThrow(EventStoreInvariantError);
    await expect(wallets.state('alice')).rejects.toThrow('stream wallet-alice: revision 1 expected at index 1, found 2');
  });

  it('refuses to load a stream whose balances do not add up', async () => {
    const { store, wallets } = await opened();
    const deposit = store.log[1];
    if (!isEvent(deposit, FundsDeposited)) throw new Error(`expected FundsDeposited, got ${deposit.type}`);
    deposit.data.balanceAfter = '0.5'; // tampered with
    wallets.forget();
    await expect(wallets.state('alice')).rejects.toThrow(InvariantError);
  });

  it('runs commands on one wallet one at a time, in call order', async () => {
    const { store, wallets } = await opened();
    const results = await Promise.all([1, 2, 3].map((n) => wallets.execute({ type: 'Deposit', walletId: 'alice', amount: BigInt(n), reference: `p${n}` })));
    expect(results.map((r) => r.state.revision)).toEqual([2, 3, 4]);
    expect(store.log.slice(2).map((e) => e.id)).toEqual(['deposit-alice-p1', 'deposit-alice-p2', 'deposit-alice-p3']);
  });
});
