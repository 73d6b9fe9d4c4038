import { balanceDelta } from '@mesh/audit';
import {
  DomainError,
  currencyOf,
  formatAmount,
  isEventOf,
  parseAmount,
  creditedChargesOf,
  walletEvents,
  type RecordedEvent,
  type RecordedWalletEvent,
  type StatementLine,
} from '@mesh/contracts';
import type { PolicyName, WalletKind } from '../domain/wallet';
import { CostViews, NO_TASK } from './cost-views';

export type { CostView } from './cost-views';

const WALLET_PREFIX = 'wallet-';

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

export interface Totals {
  deposited: bigint;
  withdrawn: bigint;
  adjusted: bigint;
  debited: bigint;
  credited: bigint;
}

/** One wallet event as a statement line: signed amount, running balance, cause and links. */
export function toStatementLine(event: RecordedWalletEvent): StatementLine {
  const currency = currencyOf(event.data.currency);
  const line: StatementLine = {
    revision: event.revision,
    position: event.position.toString(),
    eventId: event.id,
    type: event.type,
    occurredAt: event.occurredAt,
    amount: formatAmount(balanceDelta(event), currency),
    balanceAfter: event.data.balanceAfter,
    cause: { kind: 'open' },
  };
  switch (event.type) {
    case 'FundsDeposited':
      line.cause = { kind: 'deposit', reference: event.data.reference };
      break;
    case 'FundsWithdrawn':
      line.cause = { kind: 'withdrawal', reference: event.data.reference };
      break;
    case 'BalanceAdjusted':
      line.cause = { kind: 'adjustment', reference: event.data.reference, reason: event.data.reason };
      break;
    case 'UsageDebited': {
      const data = event.data;
      line.cause = {
        kind: 'usage-debit',
        chargeId: data.chargeId,
        containerId: data.containerId,
        functionId: data.functionId,
        counterpartyWalletId: data.providerWalletId,
      };
      if (data.taskId) line.cause.taskId = data.taskId;
      break;
    }
    case 'UsageCredited':
      line.cause = {
        kind: 'usage-credit',
        charges: creditedChargesOf(event.data).map((c) => ({
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
  /** Cost per task and per container: bounded caches of complete views, not in the snapshot (CostViews). */
  readonly tasks = new CostViews('task');
  readonly containers = new CostViews('container');
  readonly totals: Totals = { deposited: 0n, withdrawn: 0n, adjusted: 0n, debited: 0n, credited: 0n };
  /** Tenant owning each tenant wallet (WalletOpened.data.tenantId); a wallet not here is the operator's. */
  readonly owners = new Map<string, string>();
  /** Wallets per tenant, for the tenant's wallet limit (TENANT_WALLETS_MAX). */
  readonly walletsPerTenant = new Map<string, number>();

  apply(event: RecordedEvent): void {
    if (event.position <= this.position) return;
    this.position = event.position;
    if (!event.stream.startsWith(WALLET_PREFIX)) return;
    this.walletEvents++;
    // The category holds only wallet events (the store validates every append against the catalog).
    if (!isEventOf(event, walletEvents)) return;
    const data = event.data;
    let wallet = this.wallets.get(data.walletId);
    // A wallet's revisions only increase, and its events name their own wallet: a message that
    // breaks either is a forged copy (the store quarantines it on the wallet's next load, the audit
    // reports it) and must not reset or move the balance shown.
    if (event.stream.length !== WALLET_PREFIX.length + data.walletId.length || !event.stream.endsWith(data.walletId)) return;
    if (wallet && event.revision <= wallet.revision) return;
    const currency = currencyOf(data.currency);
    const delta = balanceDelta(event);
    if (event.type === 'WalletOpened' || !wallet) {
      // A posting before its WalletOpened can only come from a tampered log; the audit reports it.
      wallet = {
        walletId: data.walletId,
        kind: event.type === 'WalletOpened' ? event.data.kind : 'user',
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
      if (event.type === 'WalletOpened') this.setOwner(data.walletId, event.data.tenantId);
    }
    wallet.balance = parseAmount(data.balanceAfter, currency, { allowNegative: true, allowZero: true });
    wallet.revision = event.revision;
    if (event.type === 'WalletOpened' || event.type === 'WalletPolicyChanged') {
      wallet.maxDebt = parseAmount(event.data.maxDebt, currency, { allowZero: true });
      wallet.minBalance = parseAmount(event.data.minBalance, currency, { allowZero: true });
      wallet.policy = event.data.policy;
    }
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
        const { containerId, taskId, walletId, functionId } = event.data;
        this.containers.add(containerId, taskId ?? NO_TASK, -delta, walletId, functionId, currency.code);
        if (taskId) this.tasks.add(taskId, containerId, -delta, walletId, functionId, currency.code);
        break;
      }
      case 'UsageCredited':
        this.totals.credited += delta;
        wallet.earned += delta;
        wallet.credits += creditedChargesOf(event.data).length;
        break;
    }
  }

  /** Takes over the state of `other` (a projection restored from a snapshot and caught up), keeping this object for those holding it. */
  replaceWith(other: LedgerProjection): void {
    if (other === this) return;
    this.position = other.position;
    this.walletEvents = other.walletEvents;
    this.wallets.clear();
    for (const [k, v] of other.wallets) this.wallets.set(k, v);
    this.tasks.replaceWith(other.tasks);
    this.containers.replaceWith(other.containers);
    Object.assign(this.totals, other.totals);
    this.owners.clear();
    this.walletsPerTenant.clear();
    for (const [walletId, tenantId] of other.owners) this.setOwner(walletId, tenantId);
  }

  /** Records the owner of a wallet (undefined: the operator), keeping the per-tenant counts. */
  setOwner(walletId: string, tenantId: string | undefined): void {
    const previous = this.owners.get(walletId);
    if (previous === tenantId) return;
    if (previous !== undefined) {
      const left = (this.walletsPerTenant.get(previous) ?? 1) - 1;
      if (left > 0) this.walletsPerTenant.set(previous, left);
      else this.walletsPerTenant.delete(previous);
      this.owners.delete(walletId);
    }
    if (tenantId === undefined) return;
    this.owners.set(walletId, tenantId);
    this.walletsPerTenant.set(tenantId, (this.walletsPerTenant.get(tenantId) ?? 0) + 1);
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
