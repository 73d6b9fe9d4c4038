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
  const { unsealed: keys, unsealedLabels: labels } = keyOrderOf(data);
  let body = '{"data":{';
  let first = true;
  for (let i = 0; i < keys.length; i++) {
    const v = data[keys[i]];
    if (v === undefined) continue;
    body += `${first ? '' : ','}${labels[i]}${canonicalValue(v)}`;
    first = false;
  }
  // Members whose value is undefined are dropped, as canonicalJson does (a tampered event may lack them).
  body += `}${prevHash === undefined ? '' : `,"prevHash":${canonicalValue(prevHash)}`}${type === undefined ? '' : `,"type":${canonicalValue(type)}`}}`;
  return body;
}

/**
 * canonicalJson(v) for the members of wallet event data, faster: key orders come from the cache
 * (a credit names up to CREDIT_BATCH_MAX charges of one shape), plain strings are not escaped.
 * Sparse arrays (never in parsed JSON) render as canonicalJson renders them.
 */
function canonicalValue(v: unknown): string {
  if (typeof v === 'string') return jsonString(v);
  if (v === null || typeof v !== 'object') return canonicalJson(v);
  if (Array.isArray(v)) {
    let out = '[';
    for (let i = 0; i < v.length; i++) {
      const item: unknown = v[i];
      out += `${i === 0 ? '' : ','}${!(i in v) ? '' : item === undefined ? 'null' : canonicalValue(item)}`;
    }
    return `${out}]`;
  }
  const record = v as Record<string, unknown>;
  const { sorted: keys, sortedLabels: labels } = keyOrderOf(record);
  let out = '{';
  let first = true;
  for (let i = 0; i < keys.length; i++) {
    const member = record[keys[i]];
    if (member === undefined) continue;
    out += `${first ? '' : ','}${labels[i]}${canonicalValue(member)}`;
    first = false;
  }
  return `${out}}`;
}

/** Characters JSON.stringify never escapes in a string: such strings need no escaping pass. */
const PLAIN_STRING = /^[A-Za-z0-9_.:/ +=-]*$/;
const jsonString = (v: string): string => (PLAIN_STRING.test(v) ? `"${v}"` : JSON.stringify(v));

/**
 * The sorted keys of an object (and, for wallet event data, without its seal members), cached by
 * its own key list: event data comes in a handful of shapes, and sorting the keys of each object
 * was most of the cost of hashing it. Shapes are found by key count, then compared key by key
 * (parsed keys are internalised strings: each comparison is one pointer compare). The cache is
 * bounded (shapes beyond it are sorted each time).
 */
interface KeyOrder {
  own: string[];
  sorted: string[];
  /** `sorted` without SEAL_MEMBERS: the keys of a wallet event's hashed body. */
  unsealed: string[];
  /** `"key":` of each key of `sorted` and `unsealed`, as canonical JSON writes it. */
  sortedLabels: string[];
  unsealedLabels: string[];
}
const KEY_ORDERS_MAX = 64;
const keyOrdersByCount = new Map<number, KeyOrder[]>();
let keyOrdersCached = 0;
function keyOrderOf(record: Record<string, unknown>): KeyOrder {
  const own = Object.keys(record);
  const sameCount = keyOrdersByCount.get(own.length);
  if (sameCount) {
    next: for (const order of sameCount) {
      for (let i = 0; i < own.length; i++) if (order.own[i] !== own[i]) continue next;
      return order;
    }
  }
  const sorted = [...own].sort();
  const unsealed = sorted.filter((k) => !SEAL_MEMBERS.has(k));
  const label = (k: string) => `${jsonString(k)}:`;
  const order: KeyOrder = { own, sorted, unsealed, sortedLabels: sorted.map(label), unsealedLabels: unsealed.map(label) };
  if (keyOrdersCached < KEY_ORDERS_MAX) {
    keyOrdersCached++;
    if (sameCount) sameCount.push(order);
    else keyOrdersByCount.set(own.length, [order]);
  }
  return order;
}

/** One-shot sha256 (crypto.hash, Node >= 20.12) where available: half the cost of createHash. */
const oneShot = (crypto as { hash?: (algorithm: string, data: string, encoding: 'hex') => string }).hash;
function sha256Hex(body: string): string {
  return oneShot ? oneShot('sha256', body, 'hex') : createHash('sha256').update(body).digest('hex');
}
