import { parseAmount, type Standing, type StandingEvent } from '@mesh/contracts';
import { spec } from '@mesh/testing/decider-spec';
import { standingDecider, standingOf, type ObserveBalance } from './standing-decider';

const GRC = (v: string) => parseAmount(v, undefined, { allowNegative: true, allowZero: true });
const policy = { maxDebtMinor: GRC('0.5'), minBalanceMinor: GRC('1'), policy: 'conservative' as const };

let revision = 0;
const observe = (balance: string, over: Partial<ObserveBalance> = {}): ObserveBalance => ({
  type: 'ObserveBalance',
  walletId: 'w1',
  kind: 'user',
  currency: 'GRC',
  balanceMinor: GRC(balance),
  ...policy,
  eventId: `e${++revision}`,
  revision,
  atMs: 1000,
  ...over,
});

const changed = (from: Standing | null, to: Standing, balance: string, causeRevision: number): StandingEvent => ({
  type: 'StandingChanged',
  data: {
    walletId: 'w1',
    from,
    to,
    balance,
    currency: 'GRC',
    maxDebt: '0.5',
    minBalance: '1',
    policy: 'conservative',
    causeEventId: `e${causeRevision}`,
    causeRevision,
    changedAtMs: 1000,
  },
});

describe('standingOf', () => {
  it.each([
    ['2', 'normal'],
    ['1.00000001', 'normal'],
    ['1', 'low'],
    ['0.00000001', 'low'],
    ['0', 'overdrawn'],
    ['-0.49999999', 'overdrawn'],
    ['-0.5', 'suspended'],
    ['-3', 'suspended'],
  ])('balance %s with minBalance 1, maxDebt 0.5 is %s', (balance, expected) => {
    expect(standingOf(GRC(balance), policy)).toBe(expected);
  });

  it('has no `low` when minBalance is 0 and goes straight to suspended when maxDebt is 0', () => {
    const strict = { maxDebtMinor: 0n, minBalanceMinor: 0n, policy: 'greedy' as const };
    expect(standingOf(1n, strict)).toBe('normal');
    expect(standingOf(0n, strict)).toBe('suspended');
    expect(standingOf(0n, { ...strict, maxDebtMinor: 1n })).toBe('overdrawn');
  });
});

describe('standing decider: every transition', () => {
  const all: [Standing, string][] = [
    ['normal', '5'],
    ['low', '0.5'],
    ['overdrawn', '-0.1'],
    ['suspended', '-0.6'],
  ];

  it.each(all)('records the first standing (%s) when the wallet is opened', (to, balance) => {
    revision = 0;
    spec(standingDecider)
      .given([])
      .when(observe(balance))
      .then([changed(null, to, balance, 1)]);
  });

  for (const [from, fromBalance] of all) {
    for (const [to, toBalance] of all) {
      it(`${from} -> ${to}`, () => {
        revision = 10;
        const given = [changed(null, from, fromBalance, 10)];
        if (from === to) spec(standingDecider).given(given).when(observe(toBalance)).thenNothing();
        else
          spec(standingDecider)
            .given(given)
            .when(observe(toBalance))
            .then([changed(from, to, toBalance, 11)]);
      });
    }
  }

  it('ignores a balance older than the last cause (stale or redelivered)', () => {
    spec(standingDecider)
      .given([changed(null, 'normal', '5', 10)])
      .when(observe('-1', { revision: 9 }))
      .thenNothing();
    spec(standingDecider)
      .given([changed(null, 'normal', '5', 10)])
      .when(observe('-1', { revision: 10 }))
      .thenNothing();
  });

  it('gives a provider wallet no standing', () => {
    spec(standingDecider)
      .given([])
      .when(observe('-5', { kind: 'provider' }))
      .thenNothing();
  });

  it('a deposit that repays the debt lifts a suspension to normal in one step', () => {
    revision = 20;
    spec(standingDecider)
      .given([changed(null, 'suspended', '-0.6', 20)])
      .when(observe('3'))
      .then([changed('suspended', 'normal', '3', 21)]);
  });

  it('a policy change alone can change the standing (new thresholds, same balance)', () => {
    revision = 30;
    spec(standingDecider)
      .given([changed(null, 'normal', '2', 30)])
      .when(observe('2', { minBalanceMinor: GRC('3') }))
      .then((events) => {
        expect(events).toMatchObject([{ type: 'StandingChanged', data: { from: 'normal', to: 'low', minBalance: '3', causeRevision: 31 } }]);
      });
  });
});
