import {
  ContractError,
  DomainError,
  ForbiddenError,
  assertOperator,
  assertOwns,
  currencyOf,
  formatAmount,
  parseAmount,
  type Caller,
  type Currency,
} from '@mesh/contracts';
import type { LedgerProjection } from './projection/ledger-projection';
import type { LedgerQueries } from './projection/queries';

/**
 * Who may do what in the ledger (docs/ledger.md, "Who may call what"). The caller comes from the NATS
 * subject or the HTTP bearer token, never from a body field. The operator may do everything; a
 * tenant acts only on the wallets it owns (WalletOpened.data.tenantId, kept by the projection), within
 * limits. A refusal is a ForbiddenError (`forbidden: tenant bob may not read wallet alice`) thrown
 * before anything is written; a wallet that does not exist is refused the same way as another
 * tenant's, so a tenant learns nothing about wallets that are not its own.
 */

export interface TenantLimits {
  /** Wallets one tenant may open (TENANT_WALLETS_MAX). */
  TENANT_WALLETS_MAX: number;
  /** Highest maxDebt a tenant may give its wallets, major unit (TENANT_MAX_DEBT_CEILING). */
  TENANT_MAX_DEBT_CEILING: string;
}

/** The owner the projection knows for `walletId`: a tenant id, `undefined` for the operator's, or `null` for no such wallet. */
function ownerIn(projection: LedgerProjection, walletId: string): string | undefined | null {
  if (!projection.wallets.has(walletId)) return null;
  return projection.owners.get(walletId);
}

/** Throws unless `caller` may `verb` wallet `walletId` (as the projection knows it). */
export function assertWalletAccess(projection: LedgerProjection, caller: Caller, walletId: string, verb: string): void {
  if (caller.kind === 'operator') return;
  const owner = ownerIn(projection, walletId);
  if (owner === null) throw ForbiddenError.of(caller, verb, `wallet ${walletId}`);
  assertOwns(caller, owner, verb, `wallet ${walletId}`);
}

/** A tenant's maxDebt must not pass the ceiling (unless it keeps one the operator gave: never raised by the tenant). */
export function assertMaxDebtWithinCeiling(caller: Caller, limits: TenantLimits, maxDebt: bigint, currency: Currency, where: string, current?: bigint): void {
  if (caller.kind === 'operator') return;
  const ceiling = parseAmount(limits.TENANT_MAX_DEBT_CEILING, currency, { allowZero: true, field: 'TENANT_MAX_DEBT_CEILING' });
  if (maxDebt <= ceiling || (current !== undefined && maxDebt <= current)) return;
  throw ContractError.single(
    where,
    'maxDebt',
    `must be at most ${formatAmount(ceiling, currency)} ${currency.code} for a tenant (TENANT_MAX_DEBT_CEILING); the operator may set more`,
  );
}

/** The checks of open-wallet that need no I/O: a tenant opens user wallets only, with maxDebt within the ceiling. */
export function assertTenantMayOpen(caller: Caller, limits: TenantLimits, kind: 'user' | 'provider', maxDebt: bigint, currencyCode: string): void {
  if (caller.kind === 'operator') return;
  if (kind !== 'user') throw ForbiddenError.of(caller, 'open', 'provider wallets');
  assertMaxDebtWithinCeiling(caller, limits, maxDebt, currencyOf(currencyCode), 'open-wallet');
}

/** A tenant may hold at most TENANT_WALLETS_MAX wallets (counted by the projection). */
export function assertWalletLimit(projection: LedgerProjection, caller: Caller, limits: TenantLimits): void {
  if (caller.kind === 'operator') return;
  const held = projection.walletsPerTenant.get(caller.tenantId) ?? 0;
  if (held >= limits.TENANT_WALLETS_MAX) {
    throw new DomainError(
      'wallet_limit',
      `tenant ${caller.tenantId} already has ${held} wallets, the most a tenant may open (TENANT_WALLETS_MAX=${limits.TENANT_WALLETS_MAX})`,
    );
  }
}

/**
 * The ledger's queries as a caller may see them: the same answers as LedgerQueries, after the
 * ownership check. Shared by the NATS handlers and the HTTP server, so both refuse alike.
 */
export class LedgerReads {
  constructor(
    private readonly projection: LedgerProjection,
    private readonly queries: LedgerQueries,
    private readonly runAudit: () => Promise<unknown>,
  ) {}

  balance(caller: Caller, walletId: string) {
    assertWalletAccess(this.projection, caller, walletId, 'read');
    return this.queries.balance(walletId);
  }

  statement(caller: Caller, walletId: string, limit?: number, afterRevision?: number) {
    assertWalletAccess(this.projection, caller, walletId, 'read');
    return this.queries.statement(walletId, limit, afterRevision);
  }

  /** A task's cost: a tenant sees it only when the wallet it was charged to is its own (no charges yet: zero, nothing to hide). */
  // The wallet is checked on the answer, not on the projection's cache: costs are a bounded cache
  // read back from the wallet streams on demand, so a task not held still names its wallet here.
  async taskCost(caller: Caller, taskId: string) {
    const cost = await this.queries.taskCost(taskId);
    if (cost.walletId !== undefined) this.assertChargedTo(caller, cost.walletId, `task ${taskId}`);
    return cost;
  }

  async containerCost(caller: Caller, containerId: string) {
    const cost = await this.queries.containerCost(containerId);
    if (cost.walletId !== undefined) this.assertChargedTo(caller, cost.walletId, `container ${containerId}`);
    return cost;
  }

  providerEarnings(caller: Caller, walletId?: string) {
    assertOperator(caller, 'read', 'provider earnings');
    return this.queries.providerEarnings(walletId);
  }

  totals(caller: Caller) {
    assertOperator(caller, 'read', 'the ledger totals');
    return this.queries.totals();
  }

  audit(caller: Caller) {
    assertOperator(caller, 'run', 'the audit');
    return this.runAudit();
  }

  private assertChargedTo(caller: Caller, walletId: string, what: string): void {
    if (caller.kind === 'operator') return;
    // The message names the task or container, not the wallet it was charged to (another tenant's).
    if (this.projection.owners.get(walletId) !== caller.tenantId) throw ForbiddenError.of(caller, 'read the cost of', what);
  }
}
