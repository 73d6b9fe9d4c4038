import { DomainError, assertOwns, type Caller } from '@mesh/contracts';

/**
 * Who may read what of the credit-manager (docs/credit-manager.md, "Who may call what"). The caller
 * comes from the request's subject; wallet owners from the wallets' WalletOpened (WalletOwners).
 * The operator may do everything; a tenant reads the price plans, and the standing and charges of
 * its own wallets only. Pure: the engine resolves the owners and asks here.
 */

/** Owner of each wallet named (a tenant id or `operator`); undefined: no such wallet. */
export type OwnersOf = ReadonlyMap<string, string | undefined>;

/** Throws unless `caller` may read the standing of a wallet owned by `owner` (undefined: unknown wallet). */
export function assertMayReadStanding(caller: Caller, walletId: string, owner: string | undefined): void {
  if (caller.kind === 'operator') return;
  if (owner === undefined) throw new DomainError('unknown_wallet', `no wallet ${walletId}`);
  assertOwns(caller, owner, 'read the standing of', `wallet ${walletId}`);
}

/** The wallets a charges answer would show: every charge's, and each anomaly's that names one. */
export function walletsShown(charges: readonly { walletId: string }[], anomalies: readonly { walletId?: string }[]): string[] {
  const wallets = new Set(charges.map((c) => c.walletId));
  for (const a of anomalies) if (a.walletId !== undefined) wallets.add(a.walletId);
  return [...wallets].sort();
}

/**
 * What of a charges answer `caller` may see. A tenant must own every wallet it shows (else
 * ForbiddenError, naming the first wallet it may not read: a container or task is one wallet's);
 * anomalies that name no wallet (samples nobody could be charged for) are the operator's to see.
 */
export function visibleCharges<C extends { walletId: string }, A extends { walletId?: string }>(
  caller: Caller,
  shown: { charges: C[]; anomalies: A[] },
  owners: OwnersOf,
): { charges: C[]; anomalies: A[] } {
  if (caller.kind === 'operator') return shown;
  for (const walletId of walletsShown(shown.charges, shown.anomalies)) {
    // An unknown owner counts as the operator's: never a tenant's to read.
    assertOwns(caller, owners.get(walletId), 'read the charges of', `wallet ${walletId}`);
  }
  return { charges: shown.charges, anomalies: shown.anomalies.filter((a) => a.walletId !== undefined) };
}

/** The functions whose plan a tenant sees in price-plans: its own and the operator's (public) ones. */
export const functionVisible = (caller: Caller, fn: { tenantId?: string }): boolean =>
  caller.kind === 'operator' || fn.tenantId === undefined || fn.tenantId === caller.tenantId;
