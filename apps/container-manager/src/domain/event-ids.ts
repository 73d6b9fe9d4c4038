import { createHash } from 'node:crypto';
import { ID_MAX_LENGTH } from '@mesh/contracts';

/**
 * A deterministic event id from its cause, so a redelivered command appends the same id and the
 * store drops the duplicate. Ids must be unique in the whole log (JetStream dedup is stream-wide)
 * and at most 128 characters: a long one keeps a readable prefix and ends in a hash of the whole.
 */
export function eventId(...parts: (string | number)[]): string {
  const id = parts.join('-');
  if (id.length <= ID_MAX_LENGTH) return id;
  const hash = createHash('sha256').update(id).digest('hex').slice(0, 32);
  return `${id.slice(0, ID_MAX_LENGTH - hash.length - 1)}-${hash}`;
}

/** Labels of a node from `k=v,k2=v2`. */
export function parseNodeLabels(text: string | undefined): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const pair of (text ?? '')
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean)) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new Error(`NODE_LABELS: "${pair}" must be key=value`);
    labels[pair.slice(0, eq).trim()] = pair.slice(eq + 1).trim();
  }
  return labels;
}
