// The pure parts of the audit lib (no store): the hash chain and the balance change of an event.
import { balanceDelta } from '@mesh/audit/balance';
import { GENESIS_HASH, walletEventHash } from '@mesh/audit/hash';
import {
  CREDIT_BATCH_MAX,
  ContractError,
  creditedChargesOf,
  DomainError,
  MAX_MAJOR_DIGITS,
  currencyOf,
  formatAmount,
  parseAmount,
  type CreditedCharge,
  type Currency,
  type EventData,
  type WalletEvent,
  type WalletOpened,
  type WalletPolicy,
} from '@mesh/contracts';
import type { Decider } from '@mesh/eventstore/decider';
import { derivedEventId } from './event-ids';
import { InvariantError } from './invariant';

/**
 * The wallet aggregate (stream `wallet-<walletId>`): pure decide/evolve, no I/O. Money is bigint
 * minor units of the wallet's currency here and a decimal string of the major unit in events.
 */
export type WalletKind = EventData<typeof WalletOpened>['kind'];
export type PolicyName = WalletPolicy['policy'];
export type ReferenceKind = 'deposit' | 'withdrawal' | 'adjustment';

export interface PostedReference {
  kind: ReferenceKind;
  amount: bigint;
  eventId: string;
  balanceAfter: bigint;
  revision: number;
}

export interface WalletState {
  opened: boolean;
  walletId: string;
  kind: WalletKind;
  currency: string;
  balance: bigint;
  maxDebt: bigint;
  minBalance: bigint;
  policy: PolicyName;
  /** The tenant owning the wallet (WalletOpened.data.tenantId); undefined: the operator's. */
  tenantId?: string;
  /** Revision of the last event folded in (-1: none). */
  revision: number;
  /** Hash of the last event: the prevHash of the next one. */
  lastHash: string;
  /**
   * External references already posted, keyed `<kind>:<reference>`, and charge ids already posted
   * (each wallet holds one side of a charge). Kept for the whole life of the wallet so a charge
   * delivered again days later, beyond JetStream's dedup window, is still a no-op. These
   * collections are shared between successive states (append-only) to keep evolve O(1).
   */
  references: Map<string, PostedReference>;
  charges: Set<string>;
}

export const initialWalletState = (): WalletState => ({
  opened: false,
  walletId: '',
  kind: 'user',
  currency: 'GRC',
  balance: 0n,
  maxDebt: 0n,
  minBalance: 0n,
  policy: 'greedy',
  revision: -1,
  lastHash: GENESIS_HASH,
  references: new Map(),
  charges: new Set(),
});

// --- commands --------------------------------------------------------------------------------------
export type WalletCommand =
  | {
      type: 'OpenWallet';
      walletId: string;
      kind: WalletKind;
      currency: string;
      maxDebt: bigint;
      minBalance: bigint;
      policy: PolicyName;
      atMs: number;
      ifMissing?: boolean;
      /** The owner: the calling tenant (never a body field); absent for the operator's wallets. */
      tenantId?: string;
    }
  | { type: 'Deposit'; walletId: string; amount: bigint; reference: string; currency?: string }
  | { type: 'Withdraw'; walletId: string; amount: bigint; reference: string; currency?: string }
  | { type: 'Adjust'; walletId: string; amount: bigint; reason: string; reference: string; currency?: string }
  | { type: 'ChangePolicy'; walletId: string; maxDebt?: bigint; minBalance?: bigint; policy?: PolicyName }
  | {
      type: 'PostDebit';
      walletId: string;
      chargeId: string;
      amount: bigint;
      currency: string;
      providerWalletId: string;
      containerId: string;
      taskId?: string;
      functionId: string;
    }
  | { type: 'PostCredits'; walletId: string; currency: string; charges: CreditCharge[] };

/** One charge credited to a provider wallet (PostCredits may carry up to CREDIT_BATCH_MAX). */
export interface CreditCharge {
  chargeId: string;
  amount: bigint;
  userWalletId: string;
  containerId: string;
  taskId?: string;
  functionId: string;
}

/**
 * A wallet event with its id: as decided (the id is derived from its cause) and as read back (a
 * RecordedWalletEvent has the same members).
 */
export type IdentifiedWalletEvent = WalletEvent & { id: string };

/** Balances beyond this are refused: the event schema holds at most 15 whole digits. */
function balanceLimit(currency: Currency): bigint {
  return 10n ** BigInt(MAX_MAJOR_DIGITS + currency.exponent);
}

// --- evolve ----------------------------------------------------------------------------------------
export function evolveWallet(state: WalletState, event: IdentifiedWalletEvent): WalletState {
  const data = event.data;
  const balance = checkedBalanceAfter(state, event);
  const next: WalletState = {
    ...state,
    balance,
    revision: state.revision + 1,
    lastHash: data.hash ?? walletEventHash(event.type, data, data.prevHash),
  };
  switch (event.type) {
    case 'WalletOpened':
      next.opened = true;
      next.walletId = event.data.walletId;
      next.kind = event.data.kind;
      next.currency = event.data.currency;
      next.tenantId = event.data.tenantId;
      withPolicy(next, event.data);
      break;
    case 'WalletPolicyChanged':
      withPolicy(next, event.data);
      break;
    case 'FundsDeposited':
    case 'FundsWithdrawn':
    case 'BalanceAdjusted': {
      const kind: ReferenceKind = event.type === 'FundsDeposited' ? 'deposit' : event.type === 'FundsWithdrawn' ? 'withdrawal' : 'adjustment';
      const amount = parseAmount(event.data.amount, currencyOf(event.data.currency), { allowNegative: true, allowZero: true });
      next.references.set(`${kind}:${event.data.reference}`, { kind, amount, eventId: event.id, balanceAfter: balance, revision: next.revision });
      break;
    }
    case 'UsageDebited':
      next.charges.add(event.data.chargeId);
      break;
    case 'UsageCredited':
      for (const charge of creditedChargesOf(event.data)) next.charges.add(charge.chargeId);
      break;
    default: {
      const unknown: never = event;
      throw new InvariantError(`wallet ${state.walletId}: cannot fold ${JSON.stringify(unknown)}, not a wallet event`);
    }
  }
  return next;
}

function withPolicy(state: WalletState, data: { currency: string } & WalletPolicy): void {
  const currency = currencyOf(data.currency);
  state.maxDebt = parseAmount(data.maxDebt, currency, { allowZero: true, field: 'maxDebt' });
  state.minBalance = parseAmount(data.minBalance, currency, { allowZero: true, field: 'minBalance' });
  state.policy = data.policy;
}

/**
 * The pair assertion of every wallet event, checked where it is decided and where it is folded:
 * balanceAfter == the balance before + the event's signed amount. Returns balanceAfter (minor units).
 */
function checkedBalanceAfter(state: WalletState, event: IdentifiedWalletEvent): bigint {
  const currency = currencyOf(event.data.currency);
  const balanceAfter = parseAmount(event.data.balanceAfter, currency, { allowNegative: true, allowZero: true, field: 'balanceAfter' });
  const expected = state.balance + balanceDelta(event);
  if (balanceAfter !== expected) {
    throw new InvariantError(
      `wallet ${event.data.walletId}: ${event.type} ${event.id} has balanceAfter ${event.data.balanceAfter}, but the balance before it plus its amount is ${formatAmount(expected, currency)}`,
    );
  }
  return balanceAfter;
}

// --- decide ----------------------------------------------------------------------------------------
export function decideWallet(command: WalletCommand, state: WalletState): IdentifiedWalletEvent[] {
  if (command.type === 'OpenWallet') return decideOpen(command, state);
  if (!state.opened) throw new DomainError('unknown_wallet', `wallet ${command.walletId} does not exist`);
  const currency = currencyOf(state.currency);
  if ('currency' in command && command.currency !== undefined && command.currency !== state.currency) {
    throw new DomainError('currency_mismatch', `wallet ${state.walletId} holds ${state.currency}, not ${command.currency}`);
  }
  switch (command.type) {
    case 'Deposit':
    case 'Withdraw':
    case 'Adjust':
      return decideReferenced(command, state, currency);
    case 'ChangePolicy':
      return decidePolicy(command, state, currency);
    case 'PostDebit':
      return decideDebit(command, state, currency);
    case 'PostCredits':
      return decideCredits(command, state, currency);
  }
}

function decideOpen(command: Extract<WalletCommand, { type: 'OpenWallet' }>, state: WalletState): IdentifiedWalletEvent[] {
  if (state.opened) {
    if (command.ifMissing) return [];
    throw new DomainError('wallet_exists', `wallet ${command.walletId} already exists`);
  }
  const currency = currencyOf(command.currency);
  if (command.maxDebt < 0n) throw ContractError.single('open-wallet', 'maxDebt', 'must not be negative');
  if (command.minBalance < 0n) throw ContractError.single('open-wallet', 'minBalance', 'must not be negative');
  return [
    sealed(state, derivedEventId('open', command.walletId), {
      type: 'WalletOpened',
      data: {
        walletId: command.walletId,
        currency: currency.code,
        balanceAfter: '0',
        kind: command.kind,
        maxDebt: formatAmount(command.maxDebt, currency),
        minBalance: formatAmount(command.minBalance, currency),
        policy: command.policy,
        openedAtMs: command.atMs,
        ...(command.tenantId !== undefined ? { tenantId: command.tenantId } : {}),
        prevHash: state.lastHash,
      },
    }),
  ];
}

const REFERENCE_KIND = { Deposit: 'deposit', Withdraw: 'withdrawal', Adjust: 'adjustment' } as const;

function decideReferenced(
  command: Extract<WalletCommand, { type: 'Deposit' | 'Withdraw' | 'Adjust' }>,
  state: WalletState,
  currency: Currency,
): IdentifiedWalletEvent[] {
  const kind = REFERENCE_KIND[command.type];
  const where = kind === 'deposit' ? 'deposit' : kind === 'withdrawal' ? 'withdraw' : 'adjust';
  if (command.type === 'Adjust' ? command.amount === 0n : command.amount <= 0n) {
    throw ContractError.single(where, 'amount', command.type === 'Adjust' ? 'must not be zero' : 'must be greater than zero');
  }
  const posted = state.references.get(`${kind}:${command.reference}`);
  if (posted) {
    if (posted.amount === command.amount) return []; // the same request again: the original result stands
    throw new DomainError(
      'reference_conflict',
      `${kind} reference ${command.reference} was already posted to wallet ${state.walletId} with amount ${formatAmount(posted.amount, currency)}, not ${formatAmount(command.amount, currency)}`,
    );
  }
  const delta = command.type === 'Withdraw' ? -command.amount : command.amount;
  const balanceAfter = state.balance + delta;
  if (command.type !== 'Deposit' && delta < 0n && balanceAfter < 0n && (state.kind === 'user' || command.type === 'Withdraw')) {
    throw new DomainError(
      'insufficient_funds',
      `${kind} of ${formatAmount(command.amount < 0n ? -command.amount : command.amount, currency)} would take wallet ${state.walletId} from ${formatAmount(state.balance, currency)} to ${formatAmount(balanceAfter, currency)}, below zero`,
    );
  }
  checkLimit(balanceAfter, state, currency);
  const id = derivedEventId(kind, state.walletId, command.reference);
  const posting = {
    walletId: state.walletId,
    currency: currency.code,
    balanceAfter: formatAmount(balanceAfter, currency),
    amount: formatAmount(command.amount, currency),
    reference: command.reference,
  };
  switch (command.type) {
    case 'Deposit':
      return [sealed(state, id, { type: 'FundsDeposited', data: { ...posting, prevHash: state.lastHash } })];
    case 'Withdraw':
      return [sealed(state, id, { type: 'FundsWithdrawn', data: { ...posting, prevHash: state.lastHash } })];
    case 'Adjust':
      return [sealed(state, id, { type: 'BalanceAdjusted', data: { ...posting, reason: command.reason, prevHash: state.lastHash } })];
  }
}

function decidePolicy(command: Extract<WalletCommand, { type: 'ChangePolicy' }>, state: WalletState, currency: Currency): IdentifiedWalletEvent[] {
  const maxDebt = command.maxDebt ?? state.maxDebt;
  const minBalance = command.minBalance ?? state.minBalance;
  const policy = command.policy ?? state.policy;
  if (maxDebt < 0n) throw ContractError.single('set-policy', 'maxDebt', 'must not be negative');
  if (minBalance < 0n) throw ContractError.single('set-policy', 'minBalance', 'must not be negative');
  if (maxDebt === state.maxDebt && minBalance === state.minBalance && policy === state.policy) return [];
  return [
    sealed(state, derivedEventId('policy', state.walletId, String(state.revision + 1)), {
      type: 'WalletPolicyChanged',
      data: {
        walletId: state.walletId,
        currency: currency.code,
        balanceAfter: formatAmount(state.balance, currency),
        maxDebt: formatAmount(maxDebt, currency),
        minBalance: formatAmount(minBalance, currency),
        policy,
        prevHash: state.lastHash,
      },
    }),
  ];
}

function decideDebit(command: Extract<WalletCommand, { type: 'PostDebit' }>, state: WalletState, currency: Currency): IdentifiedWalletEvent[] {
  requireKind(state, 'user', command.chargeId, 'debit');
  if (command.amount < 0n) throw ContractError.single('charge', 'amount', 'must not be negative');
  // Already posted (any time ago) or nothing to move: nothing to write.
  if (state.charges.has(command.chargeId) || command.amount === 0n) return [];
  // A debit may take the wallet below zero and past maxDebt: the usage already happened.
  const balanceAfter = state.balance - command.amount;
  checkLimit(balanceAfter, state, currency);
  return [
    sealed(state, `debit-${command.chargeId}`, {
      type: 'UsageDebited',
      data: {
        walletId: state.walletId,
        currency: currency.code,
        balanceAfter: formatAmount(balanceAfter, currency),
        amount: formatAmount(command.amount, currency),
        chargeId: command.chargeId,
        providerWalletId: command.providerWalletId,
        containerId: command.containerId,
        ...(command.taskId !== undefined ? { taskId: command.taskId } : {}),
        functionId: command.functionId,
        prevHash: state.lastHash,
      },
    }),
  ];
}

/**
 * The provider side of several charges in one event. Charges already posted (any time ago),
 * repeated within the batch, or of zero amount are left out; if none remain there is nothing to
 * write. The event id is derived from the event's hash (which covers prevHash and every charge):
 * a retried append of the same event is a no-op in the store, and a different batch at the same
 * place in the chain can never be mistaken for it.
 */
function decideCredits(command: Extract<WalletCommand, { type: 'PostCredits' }>, state: WalletState, currency: Currency): IdentifiedWalletEvent[] {
  if (command.charges.length === 0 || command.charges.length > CREDIT_BATCH_MAX) {
    throw ContractError.single('credit', 'charges', `must hold 1 to ${CREDIT_BATCH_MAX} charges, got ${command.charges.length}`);
  }
  requireKind(state, 'provider', command.charges[0].chargeId, 'credit');
  const seen = new Set<string>();
  const credited: CreditedCharge[] = [];
  let total = 0n;
  for (const charge of command.charges) {
    if (charge.amount < 0n) throw ContractError.single('charge', 'amount', `must not be negative (charge ${charge.chargeId})`);
    if (charge.amount === 0n || state.charges.has(charge.chargeId) || seen.has(charge.chargeId)) continue;
    seen.add(charge.chargeId);
    total += charge.amount;
    credited.push({
      chargeId: charge.chargeId,
      amount: formatAmount(charge.amount, currency),
      userWalletId: charge.userWalletId,
      containerId: charge.containerId,
      functionId: charge.functionId,
      ...(charge.taskId !== undefined ? { taskId: charge.taskId } : {}),
    });
  }
  if (credited.length === 0) return [];
  const balanceAfter = state.balance + total;
  checkLimit(balanceAfter, state, currency);
  const data = {
    walletId: state.walletId,
    currency: currency.code,
    balanceAfter: formatAmount(balanceAfter, currency),
    amount: formatAmount(total, currency),
    charges: credited,
    prevHash: state.lastHash,
  };
  return [sealed(state, (hash) => `credit-${hash}`, { type: 'UsageCredited', data })];
}

function requireKind(state: WalletState, wanted: WalletKind, chargeId: string, side: 'debit' | 'credit'): void {
  if (state.kind !== wanted) {
    throw new DomainError(
      'wrong_wallet_kind',
      `charge ${chargeId}: wallet ${state.walletId} is a ${state.kind} wallet, a usage ${side} needs a ${wanted} wallet`,
    );
  }
}

function checkLimit(balanceAfter: bigint, state: WalletState, currency: Currency): void {
  const limit = balanceLimit(currency);
  if (balanceAfter >= limit || balanceAfter <= -limit) {
    throw new DomainError(
      'balance_limit',
      `wallet ${state.walletId} balance would reach ${formatAmount(balanceAfter, currency)}, beyond 10^${MAX_MAJOR_DIGITS}`,
    );
  }
}

/**
 * Seals a decided event (its data already linked to the chain by prevHash = the wallet's last hash):
 * adds its own hash and its id, and checks its balanceAfter against the balance it follows.
 */
function sealed<E extends WalletEvent>(state: WalletState, id: string | ((hash: string) => string), event: E): E & { id: string } {
  if (event.data.prevHash !== state.lastHash) throw new InvariantError(`wallet ${state.walletId}: ${event.type} is not linked to the wallet's last hash`);
  const hash = walletEventHash(event.type, event.data, event.data.prevHash);
  const sealedEvent = { ...event, id: typeof id === 'string' ? id : id(hash), data: { ...event.data, hash } };
  checkedBalanceAfter(state, sealedEvent);
  return sealedEvent;
}

export const walletDecider: Decider<WalletState, WalletCommand, IdentifiedWalletEvent> = {
  initialState: initialWalletState,
  evolve: evolveWallet,
  decide: decideWallet,
};
