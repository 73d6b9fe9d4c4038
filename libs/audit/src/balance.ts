import { currencyOf, parseAmount, type WalletEvent } from '@mesh/contracts';

type PostingType = Exclude<WalletEvent['type'], 'WalletOpened' | 'WalletPolicyChanged'>;

/** What the balance change of a wallet event depends on: its type, and the amount of a posting. A WalletEvent is one. */
export type BalanceChange =
  { type: 'WalletOpened' | 'WalletPolicyChanged'; data: { currency: string } } | { type: PostingType; data: { currency: string; amount: string } };

/** The signed change a wallet event makes to its wallet's balance (minor units). */
export function balanceDelta(event: BalanceChange): bigint {
  switch (event.type) {
    case 'WalletOpened':
    case 'WalletPolicyChanged':
      return 0n;
    case 'FundsWithdrawn':
    case 'UsageDebited':
      return -amountOf(event.data);
    case 'FundsDeposited':
    case 'BalanceAdjusted':
    case 'UsageCredited':
      return amountOf(event.data);
  }
}

function amountOf(data: { amount: string; currency: string }): bigint {
  return parseAmount(data.amount, currencyOf(data.currency), { allowNegative: true, allowZero: true });
}
