import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { OPERATOR, OPERATOR_OWNER, tenantIdProblem, type Caller } from '@mesh/contracts';
import { createSecretFileOnce, readSecretFile } from './secret-file';

/**
 * Bearer tokens of the ledger's HTTP API (docs/ledger.md, "HTTP"). Tokens are derived, not stored:
 * `<principal>.<base64url HMAC-SHA-256(key, "mesh-http-token:v1:" + principal)>`, the principal being
 * `operator` or a tenant id. Whoever holds the key (the ledger, the operator's `mesh ledger token`)
 * can mint every token; a token names its principal and proves it, nothing else (no expiry: a new
 * key revokes them all).
 */

/** Where the ledger keeps the HTTP token key when LEDGER_HTTP_TOKEN_KEY_FILE is not set (relative to the working directory). */
export const DEFAULT_HTTP_TOKEN_KEY_FILE = '.data/secrets/ledger-http-token.key';
export const HTTP_TOKEN_KEY_BYTES = 32;
/** Domain separation: the same key never MACs anything else with the same input. */
const TOKEN_CONTEXT = 'mesh-http-token:v1:';
/** A principal (64) + '.' + 43 characters of MAC: anything far longer is not a token. */
const TOKEN_MAX_LENGTH = 256;
const KEY_TEXT = /^[0-9a-f]{64,}$/;
const WHAT = 'HTTP token key file';

function macOf(key: Buffer, principal: string): Buffer {
  return createHmac('sha256', key)
    .update(TOKEN_CONTEXT + principal)
    .digest();
}

/** The token of `principal` (`operator` or a tenant id). */
export function httpTokenFor(key: Buffer, principal: string): string {
  if (principal !== OPERATOR_OWNER) {
    const problem = tenantIdProblem(principal);
    if (problem) throw new Error(`HTTP token principal "${principal}": ${problem}`);
  }
  return `${principal}.${macOf(key, principal).toString('base64url')}`;
}

/** The caller a token stands for, or undefined when it is malformed or its MAC does not match (compared in constant time). */
export function verifyHttpToken(key: Buffer, token: string): Caller | undefined {
  if (token.length > TOKEN_MAX_LENGTH) return undefined;
  const dot = token.lastIndexOf('.');
  if (dot <= 0) return undefined;
  const principal = token.slice(0, dot);
  if (principal !== OPERATOR_OWNER && tenantIdProblem(principal) !== undefined) return undefined;
  // The whole token as text against the one derived: base64url decoding is lenient (trailing bits,
  // stray characters), so comparing decoded bytes would accept several spellings of one token.
  const given = Buffer.from(token.slice(dot + 1));
  const expected = Buffer.from(macOf(key, principal).toString('base64url'));
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return undefined;
  return principal === OPERATOR_OWNER ? OPERATOR : { kind: 'tenant', tenantId: principal };
}

/** The key in `path` (hex of at least 32 bytes), or undefined when there is no such file. Errors never quote the file. */
export async function readHttpTokenKey(path: string): Promise<Buffer | undefined> {
  const text = await readSecretFile(path, WHAT, 4096);
  if (text === undefined) return undefined;
  const hex = text.trim();
  if (!KEY_TEXT.test(hex) || hex.length % 2 !== 0)
    throw new Error(`${WHAT} ${path}: must hold lowercase hex of at least ${HTTP_TOKEN_KEY_BYTES} bytes (${HTTP_TOKEN_KEY_BYTES * 2} digits)`);
  return Buffer.from(hex, 'hex');
}

/** The key in `path`, created (32 random bytes as hex, mode 0600, atomically) when missing. */
export async function ensureHttpTokenKey(path: string): Promise<{ key: Buffer; created: boolean }> {
  const existing = await readHttpTokenKey(path);
  if (existing) return { key: existing, created: false };
  const key = randomBytes(HTTP_TOKEN_KEY_BYTES);
  if (await createSecretFileOnce(path, WHAT, `${key.toString('hex')}\n`)) return { key, created: true };
  const other = await readHttpTokenKey(path);
  if (!other) throw new Error(`${WHAT} ${path}: exists but cannot be read`);
  return { key: other, created: false };
}
