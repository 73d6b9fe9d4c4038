import { createHash } from 'node:crypto';
import { GENESIS_HASH } from '@mesh/contracts';

export { GENESIS_HASH };

/**
 * Canonical JSON: object keys sorted, undefined members dropped, no whitespace. Two writers that
 * build the same data in a different key order (zod re-orders keys on parse) hash the same.
 * Only plain JSON values appear in event data (money is a decimal string), so this is enough.
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') {
    if (typeof value === 'bigint') throw new TypeError('canonicalJson: bigint must be a decimal string in event data');
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) return `[${value.map((v) => (v === undefined ? 'null' : canonicalJson(v))).join(',')}]`;
  const record = value as Record<string, unknown>;
  const keys = Object.keys(record).filter((k) => record[k] !== undefined).sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(record[k])}`).join(',')}}`;
}

/**
 * The hash of one wallet event: sha256 hex of canonicalJson({ type, data, prevHash }) where data is
 * the event data without its `hash` and `prevHash` members. Envelope fields (id, occurredAt...) are
 * not hashed: the chain protects the money facts, and ids are checked by the audit separately.
 */
export function walletEventHash(type: string, data: Record<string, unknown>, prevHash: string): string {
  // Same bytes as canonicalJson({ data: data minus hash/prevHash, prevHash, type }), built without
  // copying the data: this runs once per wallet event on every append, load and audit replay.
  const keys = Object.keys(data).filter((k) => k !== 'hash' && k !== 'prevHash' && data[k] !== undefined).sort();
  let body = '{"data":{';
  for (let i = 0; i < keys.length; i++) {
    const v = data[keys[i]];
    body += `${i ? ',' : ''}${JSON.stringify(keys[i])}:${v !== null && typeof v === 'object' ? canonicalJson(v) : JSON.stringify(v)}`;
  }
  body += `},"prevHash":${JSON.stringify(prevHash)},"type":${JSON.stringify(type)}}`;
  return createHash('sha256').update(body).digest('hex');
}

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
