import { DomainError, currencyOf, formatAmount, parseAmount, creditedChargesOf, type RecordedEvent, type StatementLine } from '@mesh/contracts';
import type { PolicyName, WalletKind } from '../domain/wallet';

/** Statement lines kept in memory per wallet; older ones are read back from the wallet's stream. */
export const STATEMENT_LINES_IN_MEMORY = 2_000;

export interface WalletView {
  walletId: string;
  kind: WalletKind;
  currency: string;
  balance: bigint;
  maxDebt: bigint;
  minBalance: bigint;
  policy: PolicyName;
  revision: number;
  /** Usage credits received (provider wallets) and their count. */
  earned: bigint;
  credits: number;
  /** The latest lines (at most STATEMENT_LINES_IN_MEMORY), oldest first. */
  lines: StatementLine[];
}

export interface CostView {
  walletId?: string;
  functionId?: string;
  currency: string;
  total: bigint;
  charges: number;
  /** containerId -> cost (for a task) or taskId -> cost (for a container). */
  parts: Map<string, { total: bigint; charges: number }>;
}

export interface Totals {
  deposited: bigint;
  withdrawn: bigint;
  adjusted: bigint;
  debited: bigint;
  credited: bigint;
}

type Data = Record<string, string | undefined> & { walletId: string; currency: string; balanceAfter: string };

/** The signed change an event makes to its wallet's balance (minor units). */
export function balanceDelta(type: string, data: Data): bigint {
  if (type === 'WalletOpened' || type === 'WalletPolicyChanged') return 0n;
  const amount = parseAmount(data.amount, currencyOf(data.currency), { allowNegative: true, allowZero: true });
  return type === 'FundsWithdrawn' || type === 'UsageDebited' ? -amount : amount;
}

/** One wallet event as a statement line: signed amount, running balance, cause and links. */
export function toStatementLine(event: RecordedEvent): StatementLine {
  const data = event.data as Data;
  const currency = currencyOf(data.currency);
  const line: StatementLine = {
    revision: event.revision,
    position: event.position.toString(),
    eventId: event.id,
    type: event.type,
    occurredAt: event.occurredAt,
    amount: formatAmount(balanceDelta(event.type, data), currency),
    balanceAfter: data.balanceAfter,
    cause: { kind: 'open' },
  };
  switch (event.type) {
    case 'FundsDeposited':
      line.cause = { kind: 'deposit', reference: data.reference };
      break;
    case 'FundsWithdrawn':
      line.cause = { kind: 'withdrawal', reference: data.reference };
      break;
    case 'BalanceAdjusted':
      line.cause = { kind: 'adjustment', reference: data.reference, reason: data.reason };
      break;
    case 'UsageDebited':
      line.cause = {
        kind: 'usage-debit',
        chargeId: data.chargeId,
        containerId: data.containerId,
        functionId: data.functionId,
        counterpartyWalletId: data.providerWalletId,
      };
      if (data.taskId) line.cause.taskId = data.taskId;
      break;
    case 'UsageCredited':
      line.cause = {
        kind: 'usage-credit',
        charges: creditedChargesOf(data).map((c) => ({
          chargeId: c.chargeId,
          amount: c.amount,
          counterpartyWalletId: c.userWalletId,
          containerId: c.containerId,
          functionId: c.functionId,
          ...(c.taskId ? { taskId: c.taskId } : {}),
        })),
      };
      break;
    case 'WalletPolicyChanged':
      line.cause = { kind: 'policy' };
      break;
  }
  return line;
}

/**
 * The audit projections (balances, statements, costs per task and container, provider earnings,
 * totals), folded from wallet events in log order. Rebuilt from the log on start and kept current
 * from the subscription; `position` is the last log position folded in, so every answer says what
 * it reflects. Events at or before `position` are ignored (a redelivery after a reconnect).
 */
export class LedgerProjection {
  position = 0n;
  walletEvents = 0;
  readonly wallets = new Map<string, WalletView>();
  readonly tasks = new Map<string, CostView>();
  readonly containers = new Map<string, CostView>();
  readonly totals: Totals = { deposited: 0n, withdrawn: 0n, adjusted: 0n, debited: 0n, credited: 0n };

  apply(event: RecordedEvent): void {
    if (event.position <= this.position) return;
    this.position = event.position;
    if (typeof event.stream !== 'string' || !event.stream.startsWith('wallet-')) return;
    this.walletEvents++;
    const data = event.data as Data;
    const currency = currencyOf(data.currency);
    const delta = balanceDelta(event.type, data);
    let wallet = this.wallets.get(data.walletId);
    if (event.type === 'WalletOpened' || !wallet) {
      // A posting before its WalletOpened can only come from a tampered log; the audit reports it.
      wallet = {
        walletId: data.walletId,
        kind: (data.kind as WalletKind) ?? 'user',
        currency: currency.code,
        balance: 0n,
        maxDebt: 0n,
        minBalance: 0n,
        policy: 'greedy',
        revision: -1,
        earned: 0n,
        credits: 0,
        lines: [],
      };
      this.wallets.set(data.walletId, wallet);
    }
    wallet.balance = parseAmount(data.balanceAfter, currency, { allowNegative: true, allowZero: true });
    wallet.revision = event.revision;
    if (data.maxDebt !== undefined) wallet.maxDebt = parseAmount(data.maxDebt, currency, { allowZero: true });
    if (data.minBalance !== undefined) wallet.minBalance = parseAmount(data.minBalance, currency, { allowZero: true });
    if (data.policy !== undefined) wallet.policy = data.policy as PolicyName;
    wallet.lines.push(toStatementLine(event));
    if (wallet.lines.length > STATEMENT_LINES_IN_MEMORY) wallet.lines.splice(0, wallet.lines.length - STATEMENT_LINES_IN_MEMORY);

    switch (event.type) {
      case 'FundsDeposited':
        this.totals.deposited += delta;
        break;
      case 'FundsWithdrawn':
        this.totals.withdrawn += -delta;
        break;
      case 'BalanceAdjusted':
        this.totals.adjusted += delta;
        break;
      case 'UsageDebited': {
        this.totals.debited += -delta;
        const containerId = data.containerId as string;
        const taskId = data.taskId;
        addCost(this.containers, containerId, taskId ?? '(no task)', -delta, data.walletId, data.functionId, currency.code);
        if (taskId) addCost(this.tasks, taskId, containerId, -delta, data.walletId, data.functionId, currency.code);
        break;
      }
      case 'UsageCredited':
        this.totals.credited += delta;
        wallet.earned += delta;
        wallet.credits += creditedChargesOf(data).length;
        break;
    }
  }

  wallet(walletId: string): WalletView {
    const wallet = this.wallets.get(walletId);
    if (!wallet) throw new DomainError('unknown_wallet', `wallet ${walletId} does not exist (projection at position ${this.position})`);
    return wallet;
  }

  /** Balance and revision of every wallet right now (for the audit's projection check). */
  snapshot(): { position: bigint; balances: Map<string, { revision: number; balance: bigint }> } {
    const balances = new Map<string, { revision: number; balance: bigint }>();
    for (const [id, w] of this.wallets) balances.set(id, { revision: w.revision, balance: w.balance });
    return { position: this.position, balances };
  }
}

function addCost(
  map: Map<string, CostView>,
  key: string,
  part: string,
  amount: bigint,
  walletId: string,
  functionId: string | undefined,
  currency: string,
): void {
  let view = map.get(key);
  if (!view) {
    view = { walletId, functionId, currency, total: 0n, charges: 0, parts: new Map() };
    map.set(key, view);
  }
  view.total += amount;
  view.charges++;
  const p = view.parts.get(part) ?? { total: 0n, charges: 0 };
  p.total += amount;
  p.charges++;
  view.parts.set(part, p);
}
