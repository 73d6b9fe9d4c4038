import { createHash } from 'node:crypto';
import { ID_MAX_LENGTH } from '@mesh/contracts';

/**
 * A deterministic event id from its cause (so a redelivery appends the same id and the store drops
 * it). Ids are unique in the whole log and at most 128 characters: a longer one keeps a readable
 * prefix and ends in a hash of the whole.
 */
export function eventId(...parts: (string | number)[]): string {
  const id = parts.join('-');
  if (id.length <= ID_MAX_LENGTH) return id;
  const hash = createHash('sha256').update(id).digest('hex').slice(0, 32);
  return `${id.slice(0, ID_MAX_LENGTH - hash.length - 1)}-${hash}`;
}

/** coord.md: chargeId = `ch-<sampleId>`; the ledger derives `debit-<chargeId>` / `credit-<chargeId>` from it. */
export const chargeIdOf = (sampleId: string) => eventId('ch', sampleId);
export const anomalyIdOf = (reason: string, sampleId: string) => eventId('an', reason, sampleId);
export const standingEventIdOf = (walletId: string, causeRevision: number) => eventId('st', walletId, causeRevision);
export const planEventIdOf = (planId: string, version: number) => eventId('plan', planId, version);
