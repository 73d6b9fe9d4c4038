import { MacKeyRing, walletEventBody, walletEventHash } from '@mesh/audit';
import { FundsDeposited, isEvent, isEventOf, walletEvents } from '@mesh/contracts';
import { InvariantError, WalletIntegrityError } from './domain/invariant';
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

describe('WalletHandler with MAC keys', () => {
  const open = { type: 'OpenWallet', walletId: 'alice', kind: 'user', currency: 'GRC', maxDebt: 0n, minBalance: 0n, policy: 'greedy', atMs: 1 } as const;
  const lastOf = (store: InMemoryEventStore) => {
    const last = store.log[store.log.length - 1];
    if (!isEvent(last, FundsDeposited)) throw new Error(`expected FundsDeposited, got ${last.type}`);
    return last;
  };
  /** A deposit appended straight to the store, correctly chained and hashed: what anyone who can publish could forge. */
  const forgeDeposit = async (store: InMemoryEventStore, extra: Record<string, string> = {}) => {
    const last = lastOf(store);
    const data = { walletId: 'alice', currency: 'GRC', balanceAfter: '10.00000100', prevHash: last.data.hash!, amount: '10', reference: 'forged', ...extra };
    await store.append(
      'wallet-alice',
      [{ id: 'deposit-alice-forged', type: 'FundsDeposited', data: { ...data, hash: walletEventHash('FundsDeposited', data, data.prevHash) } }],
      last.revision,
    );
  };

  it('seals every event it writes with the MAC of the active key', async () => {
    const store = new InMemoryEventStore();
    const ring = MacKeyRing.generate(0n);
    const wallets = new WalletHandler(store, 10, ring);
    await wallets.execute(open);
    await wallets.execute({ type: 'Deposit', walletId: 'alice', amount: 100n, reference: 'tx1' });
    for (const event of store.log) {
      if (!isEventOf(event, walletEvents)) throw new Error(`not a wallet event: ${event.type}`);
      expect(event.data.macKeyId).toBe(ring.activeKeyId);
      expect(ring.verify(walletEventBody(event.type, event.data, event.data.prevHash), event.data.mac!, ring.activeKeyId)).toBe(true);
    }
  });

  it('refuses a wallet holding a forged, correctly chained event: the error names stream, revision and id, and nothing is written', async () => {
    const store = new InMemoryEventStore();
    const wallets = new WalletHandler(store, 10, MacKeyRing.generate(0n));
    await wallets.execute(open);
    await wallets.execute({ type: 'Deposit', walletId: 'alice', amount: 100n, reference: 'tx1' });
    await forgeDeposit(store);
    const written = store.log.length;
    const refused = wallets.execute({ type: 'Deposit', walletId: 'alice', amount: 1n, reference: 'tx2' });
    await expect(refused).rejects.toThrow(WalletIntegrityError);
    await expect(wallets.state('alice')).rejects.toThrow(
      /^wallet-alice revision 2 \(event deposit-alice-forged\) carries no MAC, but an earlier event of its stream does/,
    );
    expect(store.log).toHaveLength(written);
  });

  it('refuses an altered MAC-sealed event (content changed, hash recomputed, MAC kept)', async () => {
    const store = new InMemoryEventStore();
    const wallets = new WalletHandler(store, 10, MacKeyRing.generate(0n));
    await wallets.execute(open);
    await wallets.execute({ type: 'Deposit', walletId: 'alice', amount: 100n, reference: 'tx1' });
    const deposit = lastOf(store);
    deposit.data.amount = '1000';
    deposit.data.balanceAfter = '1000';
    deposit.data.hash = walletEventHash('FundsDeposited', deposit.data, deposit.data.prevHash);
    wallets.forget();
    await expect(wallets.state('alice')).rejects.toThrow(/wallet-alice revision 1 \(event deposit-alice-tx1\) MAC does not match its content/);
  });

  it('accepts the events written before the key existed, then requires a MAC on every later one', async () => {
    const store = new InMemoryEventStore();
    const before = new WalletHandler(store, 10);
    await before.execute(open);
    await before.execute({ type: 'Deposit', walletId: 'alice', amount: 100n, reference: 'tx1' });
    const wallets = new WalletHandler(store, 10, MacKeyRing.generate(await store.headPosition()));
    const result = await wallets.execute({ type: 'Deposit', walletId: 'alice', amount: 5n, reference: 'tx2' });
    expect(result.state).toMatchObject({ balance: 105n, revision: 2 });
    await forgeDeposit(store, { balanceAfter: '10.00000105' });
    wallets.forget();
    await expect(wallets.state('alice')).rejects.toThrow(/revision 3 \(event deposit-alice-forged\) carries no MAC, but an earlier event of its stream does/);
  });
});
