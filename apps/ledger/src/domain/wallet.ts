import {
  CREDIT_BATCH_MAX,
  ContractError,
  creditedChargesOf,
  DomainError,
  MAX_MAJOR_DIGITS,
  currencyOf,
  formatAmount,
  parseAmount,
  type Currency,
} from '@mesh/contracts';
import type { Decider } from '@mesh/eventstore/decider';
import { GENESIS_HASH, derivedEventId, walletEventHash } from './hash';

/**
 * The wallet aggregate (stream `wallet-<walletId>`): pure decide/evolve, no I/O. Money is bigint
 * minor units of the wallet's currency here and a decimal string of the major unit in events.
 */
export type WalletKind = 'user' | 'provider';
export type PolicyName = 'greedy' | 'conservative';
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

/** A wallet event as decided (id, type, data) and as read back (RecordedEvent has the same members). */
export interface WalletEvent {
  id: string;
  type: string;
  data: Record<string, unknown> & { walletId: string; currency: string; balanceAfter: string; prevHash: string; hash?: string };
}

export const WALLET_EVENT_TYPES = [
  'WalletOpened',
  'FundsDeposited',
  'FundsWithdrawn',
  'BalanceAdjusted',
  'UsageDebited',
  'UsageCredited',
  'WalletPolicyChanged',
] as const;

/** Balances beyond this are refused: the event schema holds at most 15 whole digits. */
function balanceLimit(currency: Currency): bigint {
  return 10n ** BigInt(MAX_MAJOR_DIGITS + currency.exponent);
}

// --- evolve ----------------------------------------------------------------------------------------
export function evolveWallet(state: WalletState, event: { id: string; type: string; data: unknown }): WalletState {
  const data = event.data as WalletEvent['data'];
  const currency = currencyOf(data.currency);
  const balance = parseAmount(data.balanceAfter, currency, { allowNegative: true, allowZero: true, field: 'balanceAfter' });
  const next: WalletState = {
    ...state,
    balance,
    revision: state.revision + 1,
    lastHash: data.hash ?? walletEventHash(event.type, data, data.prevHash),
  };
  const amount = () => parseAmount(data.amount, currency, { allowNegative: true, allowZero: true });
  switch (event.type) {
    case 'WalletOpened':
    case 'WalletPolicyChanged':
      if (event.type === 'WalletOpened') {
        next.opened = true;
        next.walletId = data.walletId;
        next.kind = data.kind as WalletKind;
        next.currency = data.currency;
      }
      next.maxDebt = parseAmount(data.maxDebt, currency, { allowZero: true, field: 'maxDebt' });
      next.minBalance = parseAmount(data.minBalance, currency, { allowZero: true, field: 'minBalance' });
      next.policy = data.policy as PolicyName;
      break;
    case 'FundsDeposited':
    case 'FundsWithdrawn':
    case 'BalanceAdjusted': {
      const kind: ReferenceKind = event.type === 'FundsDeposited' ? 'deposit' : event.type === 'FundsWithdrawn' ? 'withdrawal' : 'adjustment';
      next.references.set(`${kind}:${data.reference as string}`, { kind, amount: amount(), eventId: event.id, balanceAfter: balance, revision: next.revision });
      break;
    }
    case 'UsageDebited':
      next.charges.add(data.chargeId as string);
      break;
    case 'UsageCredited':
      for (const charge of creditedChargesOf(data)) next.charges.add(charge.chargeId);
      break;
    default:
      throw new Error(`wallet ${data.walletId}: unknown event type ${event.type}`);
  }
  return next;
}

// --- decide ----------------------------------------------------------------------------------------
export function decideWallet(command: WalletCommand, state: WalletState): WalletEvent[] {
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

function decideOpen(command: Extract<WalletCommand, { type: 'OpenWallet' }>, state: WalletState): WalletEvent[] {
  if (state.opened) {
    if (command.ifMissing) return [];
    throw new DomainError('wallet_exists', `wallet ${command.walletId} already exists`);
  }
  const currency = currencyOf(command.currency);
  if (command.maxDebt < 0n) throw ContractError.single('open-wallet', 'maxDebt', 'must not be negative');
  if (command.minBalance < 0n) throw ContractError.single('open-wallet', 'minBalance', 'must not be negative');
  return [
    sealed(state, derivedEventId('open', command.walletId), 'WalletOpened', {
      walletId: command.walletId,
      currency: currency.code,
      balanceAfter: '0',
      kind: command.kind,
      maxDebt: formatAmount(command.maxDebt, currency),
      minBalance: formatAmount(command.minBalance, currency),
      policy: command.policy,
      openedAtMs: command.atMs,
    }),
  ];
}

const REFERENCE_KIND = { Deposit: 'deposit', Withdraw: 'withdrawal', Adjust: 'adjustment' } as const;
const REFERENCE_EVENT = { Deposit: 'FundsDeposited', Withdraw: 'FundsWithdrawn', Adjust: 'BalanceAdjusted' } as const;

function decideReferenced(command: Extract<WalletCommand, { type: 'Deposit' | 'Withdraw' | 'Adjust' }>, state: WalletState, currency: Currency): WalletEvent[] {
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
  const data: Record<string, unknown> = {
    walletId: state.walletId,
    currency: currency.code,
    balanceAfter: formatAmount(balanceAfter, currency),
    amount: formatAmount(command.amount, currency),
    reference: command.reference,
  };
  if (command.type === 'Adjust') data.reason = command.reason;
  return [sealed(state, derivedEventId(kind, state.walletId, command.reference), REFERENCE_EVENT[command.type], data)];
}

function decidePolicy(command: Extract<WalletCommand, { type: 'ChangePolicy' }>, state: WalletState, currency: Currency): WalletEvent[] {
  const maxDebt = command.maxDebt ?? state.maxDebt;
  const minBalance = command.minBalance ?? state.minBalance;
  const policy = command.policy ?? state.policy;
  if (maxDebt < 0n) throw ContractError.single('set-policy', 'maxDebt', 'must not be negative');
  if (minBalance < 0n) throw ContractError.single('set-policy', 'minBalance', 'must not be negative');
  if (maxDebt === state.maxDebt && minBalance === state.minBalance && policy === state.policy) return [];
  return [
    sealed(state, derivedEventId('policy', state.walletId, String(state.revision + 1)), 'WalletPolicyChanged', {
      walletId: state.walletId,
      currency: currency.code,
      balanceAfter: formatAmount(state.balance, currency),
      maxDebt: formatAmount(maxDebt, currency),
      minBalance: formatAmount(minBalance, currency),
      policy,
    }),
  ];
}

function decideDebit(command: Extract<WalletCommand, { type: 'PostDebit' }>, state: WalletState, currency: Currency): WalletEvent[] {
  requireKind(state, 'user', command.chargeId, 'debit');
  if (command.amount < 0n) throw ContractError.single('charge', 'amount', 'must not be negative');
  // Already posted (any time ago) or nothing to move: nothing to write.
  if (state.charges.has(command.chargeId) || command.amount === 0n) return [];
  // A debit may take the wallet below zero and past maxDebt: the usage already happened.
  const balanceAfter = state.balance - command.amount;
  checkLimit(balanceAfter, state, currency);
  const data: Record<string, unknown> = {
    walletId: state.walletId,
    currency: currency.code,
    balanceAfter: formatAmount(balanceAfter, currency),
    amount: formatAmount(command.amount, currency),
    chargeId: command.chargeId,
    providerWalletId: command.providerWalletId,
    containerId: command.containerId,
    taskId: command.taskId,
    functionId: command.functionId,
  };
  if (data.taskId === undefined) delete data.taskId;
  return [sealed(state, `debit-${command.chargeId}`, 'UsageDebited', data)];
}

/**
 * The provider side of several charges in one event. Charges already posted (any time ago),
 * repeated within the batch, or of zero amount are left out; if none remain there is nothing to
 * write. The event id is derived from the event's hash (which covers prevHash and every charge):
 * a retried append of the same event is a no-op in the store, and a different batch at the same
 * place in the chain can never be mistaken for it.
 */
function decideCredits(command: Extract<WalletCommand, { type: 'PostCredits' }>, state: WalletState, currency: Currency): WalletEvent[] {
  if (command.charges.length === 0 || command.charges.length > CREDIT_BATCH_MAX) {
    throw ContractError.single('credit', 'charges', `must hold 1 to ${CREDIT_BATCH_MAX} charges, got ${command.charges.length}`);
  }
  requireKind(state, 'provider', command.charges[0].chargeId, 'credit');
  const seen = new Set<string>();
  const credited: Record<string, unknown>[] = [];
  let total = 0n;
  for (const charge of command.charges) {
    if (charge.amount < 0n) throw ContractError.single('charge', 'amount', `must not be negative (charge ${charge.chargeId})`);
    if (charge.amount === 0n || state.charges.has(charge.chargeId) || seen.has(charge.chargeId)) continue;
    seen.add(charge.chargeId);
    total += charge.amount;
    const entry: Record<string, unknown> = {
      chargeId: charge.chargeId,
      amount: formatAmount(charge.amount, currency),
      userWalletId: charge.userWalletId,
      containerId: charge.containerId,
      functionId: charge.functionId,
    };
    if (charge.taskId !== undefined) entry.taskId = charge.taskId;
    credited.push(entry);
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
  };
  return [sealed(state, (hash) => `credit-${hash}`, 'UsageCredited', data)];
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

/** Links the event to the chain: prevHash = the wallet's last hash, hash = this event's hash. */
function sealed(state: WalletState, id: string | ((hash: string) => string), type: string, data: Record<string, unknown>): WalletEvent {
  const prevHash = state.lastHash;
  const hash = walletEventHash(type, data, prevHash);
  return { id: typeof id === 'string' ? id : id(hash), type, data: { ...data, prevHash, hash } as WalletEvent['data'] };
}

export const walletDecider: Decider<WalletState, WalletCommand, WalletEvent> = {
  initialState: initialWalletState,
  evolve: evolveWallet,
  decide: decideWallet,
};
