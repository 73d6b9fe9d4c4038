import { currencyOf, formatAmount, type Standing, type StandingEvent } from '@mesh/contracts';
import type { Decider } from '@mesh/eventstore/decider';

/**
 * The standing of one user wallet (stream `standing-<walletId>`), derived only from the balance the
 * ledger posted (`balanceAfter` of a wallet event) and the wallet's policy:
 *   normal     balance > minBalance
 *   low        0 < balance <= minBalance      (greedy keeps starting tasks, conservative does not)
 *   overdrawn  -maxDebt < balance <= 0        (running tasks throttled, no new ones)
 *   suspended  balance <= -maxDebt            (running tasks aborted, containers stopped)
 * A change is recorded with the ledger event that caused it; only a wallet event with a higher
 * revision than the last cause can change it, so a stale or redelivered balance never moves it back.
 */

export interface WalletPolicyMinor {
  maxDebtMinor: bigint;
  minBalanceMinor: bigint;
  policy: 'greedy' | 'conservative';
}

export interface StandingState {
  standing: Standing | null;
  /** Revision (in wallet-<walletId>) of the ledger event behind the last change; -1 before any. */
  causeRevision: number;
}

export interface ObserveBalance extends WalletPolicyMinor {
  type: 'ObserveBalance';
  walletId: string;
  kind: 'user' | 'provider';
  currency: string;
  balanceMinor: bigint;
  /** The wallet event carrying the balance. */
  eventId: string;
  revision: number;
  atMs: number;
}

export function standingOf(balanceMinor: bigint, policy: WalletPolicyMinor): Standing {
  if (balanceMinor > policy.minBalanceMinor && balanceMinor > 0n) return 'normal';
  if (balanceMinor > 0n) return 'low';
  if (balanceMinor > -policy.maxDebtMinor) return 'overdrawn';
  return 'suspended';
}

export const initialStandingState = (): StandingState => ({ standing: null, causeRevision: -1 });

export function decideStanding(command: ObserveBalance, state: StandingState): StandingEvent[] {
  if (command.kind === 'provider') return []; // the provider's balance gates nothing
  if (command.revision <= state.causeRevision) return []; // stale or already applied
  const to = standingOf(command.balanceMinor, command);
  if (to === state.standing) return [];
  const currency = currencyOf(command.currency);
  return [
    {
      type: 'StandingChanged',
      data: {
        walletId: command.walletId,
        from: state.standing,
        to,
        balance: formatAmount(command.balanceMinor, currency),
        currency: command.currency,
        maxDebt: formatAmount(command.maxDebtMinor, currency),
        minBalance: formatAmount(command.minBalanceMinor, currency),
        policy: command.policy,
        causeEventId: command.eventId,
        causeRevision: command.revision,
        changedAtMs: command.atMs,
      },
    },
  ];
}

export function evolveStanding(_state: StandingState, event: StandingEvent): StandingState {
  return { standing: event.data.to, causeRevision: event.data.causeRevision };
}

export const standingDecider: Decider<StandingState, ObserveBalance, StandingEvent> = {
  initialState: initialStandingState,
  evolve: evolveStanding,
  decide: decideStanding,
};
