import { ContractError, ForbiddenError, GRC, OPERATOR, type Caller } from '@mesh/contracts';
import { InMemoryEventStore } from '@mesh/eventstore';
import { openWallet } from '@mesh/testing/ledger';
import { WalletHandler } from './wallet.handler';
import { assertMaxDebtWithinCeiling, assertTenantMayOpen, assertWalletAccess, assertWalletLimit } from './access';
import { LedgerProjection } from './projection/ledger-projection';

const alice: Caller = { kind: 'tenant', tenantId: 'alice' };
const bob: Caller = { kind: 'tenant', tenantId: 'bob' };
const limits = { TENANT_WALLETS_MAX: 2, TENANT_MAX_DEBT_CEILING: '10' };
const grc = (major: number) => BigInt(major) * 100_000_000n;

/** A projection folded from wallets opened by alice (two), bob (one) and the operator (one). */
async function givenWallets(): Promise<LedgerProjection> {
  const store = new InMemoryEventStore();
  const book = new WalletHandler(store);
  await book.execute(openWallet('alice-1', { tenantId: 'alice' }));
  await book.execute(openWallet('alice-2', { tenantId: 'alice' }));
  await book.execute(openWallet('bob-1', { tenantId: 'bob' }));
  await book.execute(openWallet('house'));
  const projection = new LedgerProjection();
  for (const event of store.log) projection.apply(event);
  return projection;
}

const thrown = (act: () => void): unknown => {
  try {
    act();
  } catch (err) {
    return err;
  }
  return undefined;
};

describe('ledger access rules', () => {
  it('given wallets of alice, bob and the operator, then each tenant reaches only its own; the operator all', async () => {
    const projection = await givenWallets();
    expect(projection.owners).toEqual(
      new Map([
        ['alice-1', 'alice'],
        ['alice-2', 'alice'],
        ['bob-1', 'bob'],
      ]),
    );
    expect(thrown(() => assertWalletAccess(projection, alice, 'alice-1', 'read'))).toBeUndefined();
    for (const walletId of ['bob-1', 'house', 'nobody']) {
      const err = thrown(() => assertWalletAccess(projection, alice, walletId, 'read'));
      expect(err).toBeInstanceOf(ForbiddenError);
      expect((err as Error).message).toBe(`forbidden: tenant alice may not read wallet ${walletId}`);
    }
    for (const walletId of ['alice-1', 'bob-1', 'house']) expect(thrown(() => assertWalletAccess(projection, OPERATOR, walletId, 'read'))).toBeUndefined();
  });

  it('given alice holds two wallets and the limit is two, then alice may open no more; bob and the operator may', async () => {
    const projection = await givenWallets();
    expect((thrown(() => assertWalletLimit(projection, alice, limits)) as Error).message).toBe(
      'tenant alice already has 2 wallets, the most a tenant may open (TENANT_WALLETS_MAX=2)',
    );
    expect(thrown(() => assertWalletLimit(projection, bob, limits))).toBeUndefined();
    expect(thrown(() => assertWalletLimit(projection, OPERATOR, limits))).toBeUndefined();
  });

  it('a tenant opens user wallets only, with maxDebt up to the ceiling; the operator anything', () => {
    expect(thrown(() => assertTenantMayOpen(bob, limits, 'user', grc(10), 'GRC'))).toBeUndefined();
    expect((thrown(() => assertTenantMayOpen(bob, limits, 'provider', 0n, 'GRC')) as Error).message).toBe(
      'forbidden: tenant bob may not open provider wallets',
    );
    const err = thrown(() => assertTenantMayOpen(bob, limits, 'user', grc(10) + 1n, 'GRC'));
    expect(err).toBeInstanceOf(ContractError);
    expect((err as ContractError).issues).toEqual([
      { field: 'maxDebt', rule: 'must be at most 10 GRC for a tenant (TENANT_MAX_DEBT_CEILING); the operator may set more' },
    ]);
    expect(thrown(() => assertTenantMayOpen(OPERATOR, limits, 'provider', grc(1000), 'GRC'))).toBeUndefined();
  });

  it('given the operator gave a wallet maxDebt 50, then its tenant may keep or lower it but not raise it', () => {
    const change = (to: number) => thrown(() => assertMaxDebtWithinCeiling(alice, limits, grc(to), GRC, 'set-policy', grc(50)));
    expect(change(50)).toBeUndefined();
    expect(change(20)).toBeUndefined();
    expect(change(51)).toBeInstanceOf(ContractError);
  });
});
