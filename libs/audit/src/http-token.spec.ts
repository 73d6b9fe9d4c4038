import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { OPERATOR } from '@mesh/contracts';
import { ensureHttpTokenKey, httpTokenFor, readHttpTokenKey, verifyHttpToken } from './http-token';

describe('HTTP tokens', () => {
  const key = randomBytes(32);

  it('given the key, then a token names its principal and verifies to that caller', () => {
    const operator = httpTokenFor(key, 'operator');
    const alice = httpTokenFor(key, 'alice');
    expect(operator).toMatch(/^operator\.[A-Za-z0-9_-]{43}$/);
    expect(alice).toMatch(/^alice\.[A-Za-z0-9_-]{43}$/);
    expect(verifyHttpToken(key, operator)).toEqual(OPERATOR);
    expect(verifyHttpToken(key, alice)).toEqual({ kind: 'tenant', tenantId: 'alice' });
  });

  it('is derived, not random: the same key and principal give the same token (nothing to store)', () => {
    expect(httpTokenFor(Buffer.from(key), 'bob')).toBe(httpTokenFor(key, 'bob'));
  });

  it("given another key, or alice's MAC under bob's name, then the token is refused", () => {
    const alice = httpTokenFor(key, 'alice');
    expect(verifyHttpToken(randomBytes(32), alice)).toBeUndefined();
    expect(verifyHttpToken(key, `bob.${alice.split('.')[1]}`)).toBeUndefined();
    expect(verifyHttpToken(key, `operator.${alice.split('.')[1]}`)).toBeUndefined();
  });

  it('refuses malformed tokens without throwing', () => {
    const mac = httpTokenFor(key, 'alice').split('.')[1];
    // The last of 43 base64url characters carries 2 unused bits: another letter there decodes to the same MAC, and is still refused.
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const sameBytes = `${mac.slice(0, 42)}${alphabet[alphabet.indexOf(mac[42]) ^ 1]}`;
    expect(Buffer.from(sameBytes, 'base64url').equals(Buffer.from(mac, 'base64url'))).toBe(true);
    for (const token of [
      '',
      '.',
      'alice',
      `.${mac}`,
      'alice.',
      `alice.${mac}x`,
      `alice.${mac}=`,
      `alice.${sameBytes}`,
      `alice.${mac.slice(1)}`,
      `a.b.${mac}`,
      `system.${mac}`,
      'x'.repeat(300),
    ]) {
      expect(verifyHttpToken(key, token)).toBeUndefined();
    }
  });

  it('refuses to mint a token for a principal that is neither the operator nor a valid tenant id', () => {
    expect(() => httpTokenFor(key, 'a.b')).toThrow('HTTP token principal "a.b": must match');
    expect(() => httpTokenFor(key, 'system')).toThrow('"system" is reserved');
  });
});

describe('HTTP token key file', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'mesh-http-token-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('is created on first use (32 random bytes as hex, mode 0600, folder 0700) and read back the same', async () => {
    const path = join(dir, 'secrets', 'ledger-http-token.key');
    const first = await ensureHttpTokenKey(path);
    expect(first.created).toBe(true);
    expect(first.key).toHaveLength(32);
    expect(readFileSync(path, 'utf8')).toBe(`${first.key.toString('hex')}\n`);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, 'secrets')).mode & 0o777).toBe(0o700);
    const again = await ensureHttpTokenKey(path);
    expect(again.created).toBe(false);
    expect(again.key.equals(first.key)).toBe(true);
  });

  it('two starts at once end with one key', async () => {
    const path = join(dir, 'k');
    const [a, b] = await Promise.all([ensureHttpTokenKey(path), ensureHttpTokenKey(path)]);
    expect(a.key.equals(b.key)).toBe(true);
    expect([a.created, b.created].filter(Boolean)).toHaveLength(1);
  });

  it('is absent: undefined; malformed: an error naming the file and the rule, never its content', async () => {
    expect(await readHttpTokenKey(join(dir, 'none'))).toBeUndefined();
    const path = join(dir, 'bad.key');
    writeFileSync(path, 'abcd1234');
    const err = await readHttpTokenKey(path).then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(err?.message).toBe(`HTTP token key file ${path}: must hold lowercase hex of at least 32 bytes (64 digits)`);
    expect(err?.message).not.toContain('abcd1234');
  });
});
