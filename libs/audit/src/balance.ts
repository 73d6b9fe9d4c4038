import { currencyOf, parseAmount, type WalletEvent } from '@mesh/contracts';

/** The signed change a wallet event makes to its wallet's balance (minor units). */
export function balanceDelta(event: WalletEvent): bigint {
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
