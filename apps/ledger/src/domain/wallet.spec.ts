import { createHash } from 'node:crypto';
import { CREDIT_BATCH_MAX, ContractError, DomainError, catalog, parseAmount } from '@mesh/contracts';
import { spec } from '@mesh/testing/decider-spec';
import { GENESIS_HASH, canonicalJson, walletEventHash } from '@mesh/audit';
import { derivedEventId } from './event-ids';
import {
  decideWallet,
  evolveWallet,
  initialWalletState,
  walletDecider,
  type CreditCharge,
  type WalletCommand,
  type IdentifiedWalletEvent,
  type WalletState,
} from './wallet';
import { InvariantError } from './invariant';

const g = (major: string) => parseAmount(major, undefined, { allowNegative: true, allowZero: true });

/** Runs commands through decide/evolve like the wallet handler does, returning every event written. */
function history(commands: WalletCommand[], state: WalletState = initialWalletState()): IdentifiedWalletEvent[] {
  const events: IdentifiedWalletEvent[] = [];
  for (const command of commands) {
    for (const event of decideWallet(command, state)) {
      state = evolveWallet(state, event);
      events.push(event);
    }
  }
  return events;
}

const open = (walletId = 'alice', extra: Partial<Extract<WalletCommand, { type: 'OpenWallet' }>> = {}): WalletCommand => ({
  type: 'OpenWallet',
  walletId,
  kind: 'user',
  currency: 'GRC',
  maxDebt: g('0.5'),
  minBalance: 0n,
  policy: 'greedy',
  atMs: 1000,
  ...extra,
});
const deposit = (amount: string, reference = 'tx1', walletId = 'alice'): WalletCommand => ({ type: 'Deposit', walletId, amount: g(amount), reference });
const withdraw = (amount: string, reference = 'w1'): WalletCommand => ({ type: 'Withdraw', walletId: 'alice', amount: g(amount), reference });
const adjust = (amount: string, reference = 'a1', walletId = 'alice'): WalletCommand => ({
  type: 'Adjust',
  walletId,
  amount: g(amount),
  reason: 'goodwill',
  reference,
});
const debit = (chargeId: string, amount: string, taskId?: string): WalletCommand => ({
  type: 'PostDebit',
  walletId: 'alice',
  chargeId,
  amount: g(amount),
  currency: 'GRC',
  providerWalletId: 'provider',
  containerId: 'c1',
  functionId: 'f1',
  ...(taskId ? { taskId } : {}),
});
const charge = (chargeId: string, amount: string, userWalletId = 'alice'): CreditCharge => ({
  chargeId,
  amount: g(amount),
  userWalletId,
  containerId: 'c1',
  functionId: 'f1',
});
const credits = (...charges: CreditCharge[]): WalletCommand => ({ type: 'PostCredits', walletId: 'provider', currency: 'GRC', charges });
const credit = (chargeId: string, amount: string): WalletCommand => credits(charge(chargeId, amount));

const opened = () => history([open()]);
const funded = (amount = '1') => history([open(), deposit(amount)]);
const providerOpened = () => history([open('provider', { kind: 'provider', maxDebt: 0n })]);
const providerState = () => providerOpened().reduce(evolveWallet, initialWalletState());
const one = (events: IdentifiedWalletEvent[]) => {
  expect(events).toHaveLength(1);
  return events[0];
};

describe('wallet decider', () => {
  describe('open', () => {
    it('opens a user wallet with its policy, balance 0 and the genesis link', () => {
      spec(walletDecider)
        .given([])
        .when(open())
        .then((events) => {
          const e = one(events);
          expect(e).toMatchObject({
            id: 'open-alice',
            type: 'WalletOpened',
            data: {
              walletId: 'alice',
              kind: 'user',
              currency: 'GRC',
              balanceAfter: '0',
              maxDebt: '0.5',
              minBalance: '0',
              policy: 'greedy',
              prevHash: GENESIS_HASH,
            },
          });
          expect(e.data.hash).toBe(walletEventHash('WalletOpened', e.data, GENESIS_HASH));
          expect(() => catalog.validate(e.type, 'wallet', e.data)).not.toThrow();
        });
    });
    it('opens a provider wallet', () => {
      spec(walletDecider)
        .given([])
        .when(open('provider', { kind: 'provider' }))
        .then((events) => expect(one(events).data).toMatchObject({ kind: 'provider' }));
    });
    it('refuses a duplicate wallet id', () => {
      spec(walletDecider)
        .given(opened())
        .when(open())
        .thenThrows(DomainError, /alice already exists/);
    });
    it('is a no-op for an existing wallet when asked to open only if missing (provider at start)', () => {
      spec(walletDecider)
        .given(providerOpened())
        .when(open('provider', { kind: 'provider', ifMissing: true }))
        .thenNothing();
    });
    it('refuses an unknown currency', () => {
      spec(walletDecider)
        .given([])
        .when(open('alice', { currency: 'XYZ' }))
        .thenThrows(ContractError, /currency/);
    });
  });

  describe('deposit', () => {
    it('credits the wallet and carries the balance after it', () => {
      spec(walletDecider)
        .given(opened())
        .when(deposit('1.5'))
        .then((events) => {
          expect(one(events)).toMatchObject({
            id: 'deposit-alice-tx1',
            type: 'FundsDeposited',
            data: { amount: '1.5', balanceAfter: '1.5', reference: 'tx1' },
          });
        });
    });
    it('is a no-op for the same reference with the same amount', () => {
      spec(walletDecider).given(funded('1')).when(deposit('1')).thenNothing();
    });
    it('refuses the same reference with another amount', () => {
      spec(walletDecider)
        .given(funded('1'))
        .when(deposit('2'))
        .thenThrows(DomainError, /reference tx1 was already posted .* amount 1, not 2/);
    });
    it('repays debt first: the balance is one number', () => {
      const inDebt = history([open(), deposit('0.1'), debit('ch-1', '0.3')]);
      spec(walletDecider)
        .given(inDebt)
        .when(deposit('1', 'tx2'))
        .then((events) => expect(one(events).data.balanceAfter).toBe('0.8'));
    });
    it('refuses an unknown wallet', () => {
      spec(walletDecider)
        .given([])
        .when(deposit('1'))
        .thenThrows(DomainError, /wallet alice does not exist/);
    });
    it('refuses a currency mismatch', () => {
      spec(walletDecider)
        .given(opened())
        .when({ ...deposit('1'), currency: 'USD' } as WalletCommand)
        .thenThrows(DomainError, /holds GRC, not USD/);
    });
    it('refuses zero and negative amounts', () => {
      spec(walletDecider)
        .given(opened())
        .when(deposit('0'))
        .thenThrows(ContractError, /amount: must be greater than zero/);
      spec(walletDecider)
        .given(opened())
        .when(deposit('-1'))
        .thenThrows(ContractError, /amount: must be greater than zero/);
    });
    it('refuses a balance beyond 10^15', () => {
      spec(walletDecider)
        .given(funded('999999999999999'))
        .when(deposit('1', 'tx2'))
        .thenThrows(DomainError, /beyond 10\^15/);
    });
    it('derives a hashed event id when the readable one would exceed 128 characters', () => {
      const id = derivedEventId('deposit', 'w'.repeat(64), 'r'.repeat(100));
      expect(id).toMatch(/^deposit-[0-9a-f]{40}$/);
      expect(derivedEventId('deposit', 'w'.repeat(64), 'r'.repeat(100))).toBe(id);
    });
  });

  describe('withdraw', () => {
    it('debits the wallet down to exactly zero', () => {
      spec(walletDecider)
        .given(funded('1'))
        .when(withdraw('1'))
        .then((events) => expect(one(events)).toMatchObject({ type: 'FundsWithdrawn', data: { amount: '1', balanceAfter: '0' } }));
    });
    it('refuses to take the wallet below zero', () => {
      spec(walletDecider)
        .given(funded('1'))
        .when(withdraw('1.00000001'))
        .thenThrows(DomainError, /below zero/);
    });
    it('refuses a wallet in debt', () => {
      spec(walletDecider)
        .given(history([open(), debit('ch-1', '0.1')]))
        .when(withdraw('0.01'))
        .thenThrows(DomainError, /below zero/);
    });
    it('is idempotent by reference', () => {
      const done = history([open(), deposit('1'), withdraw('0.4')]);
      spec(walletDecider).given(done).when(withdraw('0.4')).thenNothing();
      spec(walletDecider)
        .given(done)
        .when(withdraw('0.5'))
        .thenThrows(DomainError, /reference_conflict|already posted/);
    });
  });

  describe('adjust', () => {
    it('applies a signed correction with its reason', () => {
      spec(walletDecider)
        .given(funded('1'))
        .when(adjust('-0.25'))
        .then((events) => {
          expect(one(events)).toMatchObject({ type: 'BalanceAdjusted', data: { amount: '-0.25', balanceAfter: '0.75', reason: 'goodwill', reference: 'a1' } });
        });
    });
    it('refuses to take a user wallet below zero', () => {
      spec(walletDecider)
        .given(funded('1'))
        .when(adjust('-1.5'))
        .thenThrows(DomainError, /below zero/);
    });
    it('allows a positive adjustment of a wallet in debt', () => {
      spec(walletDecider)
        .given(history([open(), debit('ch-1', '0.3')]))
        .when(adjust('0.1'))
        .then((events) => expect(one(events).data.balanceAfter).toBe('-0.2'));
    });
    it('refuses zero', () => {
      spec(walletDecider)
        .given(funded('1'))
        .when(adjust('0'))
        .thenThrows(ContractError, /must not be zero/);
    });
    it('refuses a reused reference with another amount', () => {
      spec(walletDecider)
        .given(history([open(), deposit('1'), adjust('0.1')]))
        .when(adjust('0.2'))
        .thenThrows(DomainError, /already posted/);
    });
  });

  describe('usage debit and credit', () => {
    it('debits the user, naming the charge, provider, container, task and function', () => {
      spec(walletDecider)
        .given(funded('1'))
        .when(debit('ch-c1-1', '0.00000167', 't1'))
        .then((events) => {
          expect(one(events)).toMatchObject({
            id: 'debit-ch-c1-1',
            type: 'UsageDebited',
            data: {
              amount: '0.00000167',
              balanceAfter: '0.99999833',
              chargeId: 'ch-c1-1',
              providerWalletId: 'provider',
              containerId: 'c1',
              taskId: 't1',
              functionId: 'f1',
            },
          });
        });
    });
    it('may take the wallet below zero and past maxDebt: the usage already happened', () => {
      spec(walletDecider)
        .given(funded('0.1'))
        .when(debit('ch-1', '0.9'))
        .then((events) => expect(one(events).data.balanceAfter).toBe('-0.8'));
    });
    it('is a no-op for a charge already posted, however long ago', () => {
      const posted = history([open(), deposit('1'), debit('ch-1', '0.1'), deposit('1', 'tx2'), debit('ch-2', '0.1')]);
      spec(walletDecider).given(posted).when(debit('ch-1', '0.1')).thenNothing();
    });
    it('writes nothing for a zero charge', () => {
      spec(walletDecider).given(funded('1')).when(debit('ch-1', '0')).thenNothing();
    });
    it('credits the provider, the event id derived from its hash', () => {
      spec(walletDecider)
        .given(providerOpened())
        .when(credit('ch-1', '0.1'))
        .then((events) => {
          const e = one(events);
          expect(e).toMatchObject({
            type: 'UsageCredited',
            data: {
              amount: '0.1',
              balanceAfter: '0.1',
              charges: [{ chargeId: 'ch-1', amount: '0.1', userWalletId: 'alice', containerId: 'c1', functionId: 'f1' }],
            },
          });
          expect(e.id).toBe(`credit-${e.data.hash}`);
        });
      spec(walletDecider)
        .given(history([open('provider', { kind: 'provider' })].concat([credit('ch-1', '0.1')])))
        .when(credit('ch-1', '0.1'))
        .thenNothing();
    });
    it('credits several charges in one event whose amount is their sum', () => {
      spec(walletDecider)
        .given(providerOpened())
        .when(credits(charge('ch-1', '0.1'), charge('ch-2', '0.25', 'bob'), { ...charge('ch-3', '0.00000001'), taskId: 't3' }))
        .then((events) => {
          const e = one(events);
          expect(e.data).toMatchObject({ amount: '0.35000001', balanceAfter: '0.35000001' });
          if (e.type !== 'UsageCredited' || !('charges' in e.data)) throw new Error(`expected a UsageCredited naming its charges, got ${e.type}`);
          expect(e.data.charges).toEqual([
            { chargeId: 'ch-1', amount: '0.1', userWalletId: 'alice', containerId: 'c1', functionId: 'f1' },
            { chargeId: 'ch-2', amount: '0.25', userWalletId: 'bob', containerId: 'c1', functionId: 'f1' },
            { chargeId: 'ch-3', amount: '0.00000001', userWalletId: 'alice', containerId: 'c1', functionId: 'f1', taskId: 't3' },
          ]);
        });
    });
    it('leaves out charges already posted, repeated in the batch, or zero; writes nothing when none remain', () => {
      const posted = history([open('provider', { kind: 'provider' }), credit('ch-1', '0.1')]);
      spec(walletDecider)
        .given(posted)
        .when(credits(charge('ch-1', '0.1'), charge('ch-2', '0.2'), charge('ch-2', '0.2'), charge('ch-3', '0')))
        .then((events) => {
          expect(one(events).data).toMatchObject({ amount: '0.2', balanceAfter: '0.3', charges: [{ chargeId: 'ch-2', amount: '0.2' }] });
        });
      spec(walletDecider)
        .given(posted)
        .when(credits(charge('ch-1', '0.1'), charge('ch-3', '0')))
        .thenNothing();
    });
    it('refuses an empty batch, or one over CREDIT_BATCH_MAX charges', () => {
      spec(walletDecider)
        .given(providerOpened())
        .when(credits())
        .thenThrows(ContractError, /charges/);
      const many = Array.from({ length: CREDIT_BATCH_MAX + 1 }, (_, i) => charge(`ch-${i}`, '0.1'));
      spec(walletDecider)
        .given(providerOpened())
        .when(credits(...many))
        .thenThrows(ContractError, /1 to 200 charges/);
    });
    it('a different batch at the same place in the chain gets a different event id', () => {
      const a = decideWallet(credits(charge('ch-1', '0.1')), providerState());
      const b = decideWallet(credits(charge('ch-1', '0.1'), charge('ch-2', '0.1')), providerState());
      expect(a[0].id).not.toBe(b[0].id);
      expect(decideWallet(credits(charge('ch-1', '0.1')), providerState())[0].id).toBe(a[0].id);
    });
    it('refuses a debit of a provider wallet and a credit of a user wallet', () => {
      spec(walletDecider)
        .given(providerOpened())
        .when({ ...debit('ch-1', '0.1'), walletId: 'provider' })
        .thenThrows(DomainError, /needs a user wallet/);
      spec(walletDecider)
        .given(funded())
        .when({ ...credit('ch-1', '0.1'), walletId: 'alice' })
        .thenThrows(DomainError, /needs a provider wallet/);
    });
    it('refuses a charge to an unknown wallet', () => {
      spec(walletDecider)
        .given([])
        .when(debit('ch-1', '0.1'))
        .thenThrows(DomainError, /does not exist/);
    });
  });

  describe('policy', () => {
    it('changes only the given fields and keeps the balance', () => {
      spec(walletDecider)
        .given(funded('1'))
        .when({ type: 'ChangePolicy', walletId: 'alice', policy: 'conservative' })
        .then((events) => {
          expect(one(events)).toMatchObject({
            type: 'WalletPolicyChanged',
            data: { policy: 'conservative', maxDebt: '0.5', minBalance: '0', balanceAfter: '1' },
          });
        });
    });
    it('is a no-op when nothing changes', () => {
      spec(walletDecider).given(funded('1')).when({ type: 'ChangePolicy', walletId: 'alice', policy: 'greedy' }).thenNothing();
    });
  });

  describe('hash chain', () => {
    it('links each event to the hash of the previous one', () => {
      const events = history([open(), deposit('1'), debit('ch-1', '0.1'), withdraw('0.2')]);
      let prev = GENESIS_HASH;
      for (const e of events) {
        expect(e.data.prevHash).toBe(prev);
        prev = walletEventHash(e.type, e.data, e.data.prevHash);
        expect(e.data.hash).toBe(prev);
      }
    });
    it('hashes canonical JSON: key order does not matter, content does', () => {
      expect(canonicalJson({ b: 1, a: { d: [1, 'x'], c: undefined } })).toBe('{"a":{"d":[1,"x"]},"b":1}');
      const e = history([open(), deposit('1')])[1];
      const reordered = Object.fromEntries(Object.entries(e.data).reverse());
      expect(walletEventHash(e.type, reordered, e.data.prevHash)).toBe(e.data.hash);
      expect(walletEventHash(e.type, { ...e.data, amount: '2' }, e.data.prevHash)).not.toBe(e.data.hash);
    });
    it('is sha256 of canonicalJson({ type, data without hash and prevHash, prevHash }) (docs/ledger.md)', () => {
      const e = history([open(), deposit('1')])[1];
      const { hash, prevHash, ...rest } = e.data;
      const expected = createHash('sha256')
        .update(canonicalJson({ type: e.type, data: rest, prevHash }))
        .digest('hex');
      expect(walletEventHash(e.type, e.data, prevHash)).toBe(expected);
      expect(hash).toBe(expected);
    });
    it('hashes exactly canonicalJson for every shape: escapes, nested charges, missing optional fields', () => {
      const events = [
        ...history([open(), deposit('1'), { type: 'Adjust', walletId: 'alice', amount: g('-0.1'), reason: 'say "hi"\n\u00fcber \\ tab\t', reference: 'a1' }]),
        ...history([open('provider', { kind: 'provider' }), credits(charge('ch-1', '0.1'), { ...charge('ch-2', '0.2', 'bob'), taskId: 't2' })]),
      ];
      for (const e of events) {
        const { hash, prevHash, ...rest } = e.data;
        const expected = createHash('sha256')
          .update(canonicalJson({ type: e.type, data: rest, prevHash }))
          .digest('hex');
        expect([e.type, walletEventHash(e.type, e.data, prevHash)]).toEqual([e.type, expected]);
        expect(hash).toBe(expected);
      }
    });
    it('folds a recorded event without a stored hash by computing it', () => {
      const [o] = history([open()]);
      if (o.type !== 'WalletOpened') throw new Error(`expected WalletOpened, got ${o.type}`);
      const { hash, ...withoutHash } = o.data;
      const state = evolveWallet(initialWalletState(), { ...o, data: withoutHash });
      expect(state.lastHash).toBe(hash);
    });
  });

  describe('invariants', () => {
    it('refuses to fold an event whose balanceAfter is not the balance before plus its amount', () => {
      const [opening, deposited] = history([open(), deposit('1')]);
      if (deposited.type !== 'FundsDeposited') throw new Error(`expected FundsDeposited, got ${deposited.type}`);
      const state = evolveWallet(initialWalletState(), opening);
      expect(() => evolveWallet(state, { ...deposited, data: { ...deposited.data, balanceAfter: '2' } })).toThrow(InvariantError);
      expect(() => evolveWallet(state, { ...deposited, data: { ...deposited.data, balanceAfter: '2' } })).toThrow(
        /FundsDeposited deposit-alice-tx1 has balanceAfter 2, but the balance before it plus its amount is 1/,
      );
      expect(evolveWallet(state, deposited).balance).toBe(g('1'));
    });
    it('refuses a policy change that moves the balance', () => {
      const [opening, changed] = history([open(), { type: 'ChangePolicy', walletId: 'alice', maxDebt: g('1') }]);
      if (changed.type !== 'WalletPolicyChanged') throw new Error(`expected WalletPolicyChanged, got ${changed.type}`);
      const state = evolveWallet(initialWalletState(), opening);
      expect(() => evolveWallet(state, { ...changed, data: { ...changed.data, balanceAfter: '0.1' } })).toThrow(InvariantError);
    });
  });

  it('every event it decides passes the catalog schema', () => {
    const events = history([
      open(),
      deposit('1'),
      debit('ch-1', '0.1', 't1'),
      withdraw('0.2'),
      adjust('0.3'),
      { type: 'ChangePolicy', walletId: 'alice', maxDebt: g('1') },
    ]);
    const provider = history([
      open('provider', { kind: 'provider' }),
      credit('ch-1', '0.1'),
      credits(charge('ch-2', '0.1'), { ...charge('ch-3', '0.2', 'bob'), taskId: 't1' }),
    ]);
    for (const e of [...events, ...provider]) expect(() => catalog.validate(e.type, 'wallet', e.data)).not.toThrow();
  });
});
