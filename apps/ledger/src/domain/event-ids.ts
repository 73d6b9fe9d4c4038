import { createHash } from 'node:crypto';

/**
 * A readable deterministic event id from its cause (`deposit-alice-tx1`), or, when that would break
 * the id rule (longer than 128), the prefix and 40 hex of its sha256. Deterministic ids make a
 * retried append a no-op in the event store.
 */
export function derivedEventId(prefix: string, ...parts: string[]): string {
  const plain = [prefix, ...parts].join('-');
  if (plain.length <= 128) return plain;
  return `${prefix}-${createHash('sha256').update(parts.join('\u0000')).digest('hex').slice(0, 40)}`;
}
