import { creditedChargesOf, type CreditedCharge } from '@mesh/contracts';

/** A usage debit found in the log without its credit: what the provider side needs to be written. */
export interface OwedCredit {
  chargeId: string;
  /** Decimal string of the major unit, as in the debit. */
  amount: string;
  currency: string;
  userWalletId: string;
  providerWalletId: string;
  containerId: string;
  taskId?: string;
  functionId: string;
  /** The debit's place, for messages. */
  stream: string;
  revision: number;
}

/** Beyond this many credits seen before their debit the oldest are forgotten (only logs of the old parallel posting have any). */
const EARLY_CREDITS_MAX = 100_000;

/**
 * Folds the wallet events of the log (in log order) into the debits that have no credit yet. The
 * ledger writes a charge's debit first and derives its credit from it once the debit is stored, so
 * a crash (or a dead-lettered charge) between the two leaves exactly such debits; the ledger reads
 * the whole log at start anyway (for its projection) and credits what this finds (LedgerEngine).
 *
 * Memory follows the charges in flight, not the log: a debit is dropped as soon as its credit is
 * seen. Logs written before debit-first posting may hold a credit before its debit: those credit
 * ids are kept (bounded) until the debit comes. Pure: no I/O.
 */
export class UncreditedDebits {
  private readonly owed = new Map<string, OwedCredit>();
  private readonly creditedEarly = new Set<string>();

  observe(event: { stream: unknown; type: string; revision: number; data: unknown }): void {
    if (typeof event.stream !== 'string' || !event.stream.startsWith('wallet-') || !isRecord(event.data)) return;
    const data = event.data;
    if (event.type === 'UsageDebited') {
      const debit = owedOf(event.stream, event.revision, data);
      if (!debit) return; // malformed: the audit reports it (events-valid); nothing sound to credit
      if (this.creditedEarly.delete(debit.chargeId)) return;
      this.owed.set(debit.chargeId, debit);
    } else if (event.type === 'UsageCredited') {
      let charges: CreditedCharge[];
      try {
        charges = creditedChargesOf(data);
      } catch {
        return;
      }
      for (const charge of charges) {
        if (typeof charge?.chargeId !== 'string') continue;
        if (!this.owed.delete(charge.chargeId)) this.remember(charge.chargeId);
      }
    }
  }

  /** The debits seen without a credit, in log order. */
  list(): OwedCredit[] {
    return [...this.owed.values()];
  }

  get size(): number {
    return this.owed.size;
  }

  private remember(chargeId: string): void {
    if (this.creditedEarly.size >= EARLY_CREDITS_MAX) {
      const oldest = this.creditedEarly.values().next();
      if (!oldest.done) this.creditedEarly.delete(oldest.value);
    }
    this.creditedEarly.add(chargeId);
  }
}

function owedOf(stream: string, revision: number, d: Record<string, unknown>): OwedCredit | undefined {
  const { chargeId, amount, currency, walletId, providerWalletId, containerId, taskId, functionId } = d;
  if (
    typeof chargeId !== 'string' ||
    typeof amount !== 'string' ||
    typeof currency !== 'string' ||
    typeof walletId !== 'string' ||
    typeof providerWalletId !== 'string' ||
    typeof containerId !== 'string' ||
    typeof functionId !== 'string' ||
    (taskId !== undefined && typeof taskId !== 'string')
  )
    return undefined;
  return {
    chargeId,
    amount,
    currency,
    userWalletId: walletId,
    providerWalletId,
    containerId,
    functionId,
    ...(taskId !== undefined ? { taskId } : {}),
    stream,
    revision,
  };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
