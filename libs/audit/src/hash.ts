import * as crypto from 'node:crypto';
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
  const keys = Object.keys(record)
    .filter((k) => record[k] !== undefined)
    .sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(record[k])}`).join(',')}}`;
}

/**
 * The hash of one wallet event: sha256 hex of its sealed body (`walletEventBody`). Envelope fields
 * (id, occurredAt...) are not hashed: the chain protects the money facts, and ids are checked by
 * the audit separately.
 */
export function walletEventHash(type: unknown, data: Record<string, unknown>, prevHash: unknown): string {
  return sha256Hex(walletEventBody(type, data, prevHash));
}

/** The hash of a body already built with walletEventBody (which the MAC needs too: built once, used twice). */
export function hashOfWalletEventBody(body: string): string {
  return sha256Hex(body);
}

/**
 * Members of a wallet event's data that seal it rather than state a fact: they are left out of the
 * body that is hashed and MAC'd (a seal cannot cover itself). `mac`/`macKeyId` are left out so the
 * hash chain is the same with and without a key (the audit checks it without one).
 */
export const SEAL_MEMBERS: ReadonlySet<string> = new Set(['hash', 'prevHash', 'mac', 'macKeyId']);

/**
 * The canonical body both the hash and the MAC of a wallet event cover: canonicalJson({ type, data,
 * prevHash }) where data is the event data without its seal members (SEAL_MEMBERS).
 */
export function walletEventBody(type: unknown, data: Record<string, unknown>, prevHash: unknown): string {
  // Same bytes as canonicalJson({ data: data minus seals, prevHash, type }), built without copying
  // the data: this runs once per wallet event on every append, load and audit replay.
  const keys = hashedKeys(data);
  let body = '{"data":{';
  let first = true;
  for (let i = 0; i < keys.length; i++) {
    const v = data[keys[i]];
    if (v === undefined) continue;
    body += `${first ? '' : ','}${jsonString(keys[i])}:${typeof v === 'string' ? jsonString(v) : v !== null && typeof v === 'object' ? canonicalJson(v) : JSON.stringify(v)}`;
    first = false;
  }
  // Members whose value is undefined are dropped, as canonicalJson does (a tampered event may lack them).
  body += `}${prevHash === undefined ? '' : `,"prevHash":${jsonValue(prevHash)}`}${type === undefined ? '' : `,"type":${jsonValue(type)}`}}`;
  return body;
}

/** Characters JSON.stringify never escapes in a string: such strings need no escaping pass. */
const PLAIN_STRING = /^[A-Za-z0-9_.:/ +=-]*$/;
const jsonString = (v: string): string => (PLAIN_STRING.test(v) ? `"${v}"` : JSON.stringify(v));
/** prevHash and type are strings in every valid event; a tampered one may hold anything. */
const jsonValue = (v: unknown): string => (typeof v === 'string' ? jsonString(v) : canonicalJson(v));

/**
 * The sorted hashed keys of an event data object, cached by its key list: wallet events come in a
 * handful of shapes, and sorting the keys of each event was most of the cost of hashing it. The
 * cache is bounded (shapes beyond it are sorted each time).
 */
const KEY_ORDERS_MAX = 64;
const keyOrders = new Map<string, { own: string[]; sorted: string[] }>();
function hashedKeys(data: Record<string, unknown>): string[] {
  const own = Object.keys(data);
  const signature = own.join(',');
  const hit = keyOrders.get(signature);
  // The joined signature is ambiguous (a key may hold a comma): a hit counts only if every key matches.
  if (hit && hit.own.length === own.length && hit.own.every((k, i) => k === own[i])) return hit.sorted;
  const sorted = own.filter((k) => !SEAL_MEMBERS.has(k)).sort();
  if (!hit && keyOrders.size < KEY_ORDERS_MAX) keyOrders.set(signature, { own, sorted });
  return sorted;
}

/** One-shot sha256 (crypto.hash, Node >= 20.12) where available: half the cost of createHash. */
const oneShot = (crypto as { hash?: (algorithm: string, data: string, encoding: 'hex') => string }).hash;
function sha256Hex(body: string): string {
  return oneShot ? oneShot('sha256', body, 'hex') : createHash('sha256').update(body).digest('hex');
}
