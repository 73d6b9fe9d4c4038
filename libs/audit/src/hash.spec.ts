import { createHash } from 'node:crypto';
import type { WalletEvent } from '@mesh/contracts';
import { balanceDelta } from './balance';
import { GENESIS_HASH, canonicalJson, walletEventHash } from './hash';

describe('wallet hash', () => {
  it('writes canonical JSON: keys sorted, undefined members dropped, no whitespace', () => {
    expect(canonicalJson({ b: '2', a: { d: [1, 'x'], c: undefined }, e: null })).toBe('{"a":{"d":[1,"x"]},"b":"2","e":null}');
    expect(() => canonicalJson({ amount: 1n })).toThrow(TypeError);
  });

  it('hashes exactly canonicalJson for tampered shapes too: ambiguous key lists, non-string prevHash or type', () => {
    const canonical = (type: unknown, data: Record<string, unknown>, prevHash: unknown) => {
      const { hash: _h, prevHash: _p, ...rest } = data;
      return createHash('sha256')
        .update(canonicalJson({ type, data: rest, prevHash }))
        .digest('hex');
    };
    const plain = { a: '1', b: '2', c: '3' };
    const comma = { a: '1', 'b,c': '9' }; // joins to the same "a,b,c" as plain
    for (const data of [plain, comma, plain, comma]) expect(walletEventHash('T', data, GENESIS_HASH)).toBe(canonical('T', data, GENESIS_HASH));
    for (const prev of [null, 123, undefined, { x: 1 }]) {
      expect(walletEventHash('T', plain, prev)).toBe(canonical('T', plain, prev));
    }
    expect(walletEventHash(7, plain, GENESIS_HASH)).toBe(canonical(7, plain, GENESIS_HASH));
  });

  it('hashes the documented body (docs/ledger.md, "Hash chain")', () => {
    const data = { walletId: 'alice', currency: 'GRC', balanceAfter: '1', amount: '1', reference: 'tx1' };
    const body = `{"data":{"amount":"1","balanceAfter":"1","currency":"GRC","reference":"tx1","walletId":"alice"},"prevHash":"${GENESIS_HASH}","type":"FundsDeposited"}`;
    expect(walletEventHash('FundsDeposited', { ...data, prevHash: GENESIS_HASH, hash: 'ignored' }, GENESIS_HASH)).toBe(
      createHash('sha256').update(body).digest('hex'),
    );
  });
});

describe('balanceDelta', () => {
  const posting = { walletId: 'w', currency: 'GRC', balanceAfter: '0', prevHash: GENESIS_HASH };
  const delta = (event: WalletEvent) => balanceDelta(event);
  it('is the signed amount of a posting and zero for opening and policy events', () => {
    expect(delta({ type: 'FundsDeposited', data: { ...posting, amount: '1.5', reference: 'r' } })).toBe(150_000_000n);
    expect(delta({ type: 'FundsWithdrawn', data: { ...posting, amount: '0.5', reference: 'r' } })).toBe(-50_000_000n);
    expect(delta({ type: 'BalanceAdjusted', data: { ...posting, amount: '-0.00000001', reason: 'x', reference: 'r' } })).toBe(-1n);
    expect(delta({ type: 'UsageDebited', data: { ...posting, amount: '0.1', chargeId: 'c', providerWalletId: 'p', containerId: 'k', functionId: 'f' } })).toBe(
      -10_000_000n,
    );
    expect(delta({ type: 'WalletPolicyChanged', data: { ...posting, maxDebt: '1', minBalance: '0', policy: 'greedy' } })).toBe(0n);
  });
});
