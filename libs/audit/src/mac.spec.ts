import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { walletEventBody, walletEventHash } from './hash';
import { MacKeyRing, walletMacProblem } from './mac';
import { ensureMacKeyRing, keyFileText, readMacKeyRing } from './mac-key-file';

const deposit = { walletId: 'alice', currency: 'GRC', balanceAfter: '1', amount: '1', reference: 'tx1', prevHash: '0'.repeat(64) };
const bodyOf = (data: Record<string, unknown>) => walletEventBody('FundsDeposited', data, data.prevHash);

describe('wallet event MAC', () => {
  const ring = MacKeyRing.generate(100n, Date.UTC(2026, 10, 29));

  it('covers the same body as the hash, which leaves the seals (hash, prevHash, mac, macKeyId) out of data', () => {
    const signed = { ...deposit, ...ring.sign(bodyOf(deposit)) };
    const withHash = { ...signed, hash: walletEventHash('FundsDeposited', deposit, deposit.prevHash) };
    expect(walletEventHash('FundsDeposited', withHash, withHash.prevHash)).toBe(withHash.hash);
    expect(bodyOf(withHash)).toBe(bodyOf(deposit));
    expect(ring.verify(bodyOf(withHash), signed.mac, signed.macKeyId)).toBe(true);
    expect(signed.macKeyId).toMatch(/^k20261129-[0-9a-f]{8}$/);
  });

  it('given an event written after MACs began: a missing, altered or foreign MAC is named, a valid one passes', () => {
    const trail = () => ({ macSeen: false });
    const signed = { ...deposit, ...ring.sign(bodyOf(deposit)) };
    expect(walletMacProblem(ring, trail(), bodyOf(signed), signed, 101n)).toBeUndefined();
    expect(walletMacProblem(ring, trail(), bodyOf(deposit), deposit, 101n)).toMatch(
      /carries no MAC, and was written at position 101, after MACs began \(position 100\)/,
    );
    const altered = { ...signed, amount: '1000', balanceAfter: '1000' };
    expect(walletMacProblem(ring, trail(), bodyOf(altered), altered, 101n)).toMatch(/MAC does not match its content/);
    const foreign = { ...deposit, ...MacKeyRing.generate(0n).sign(bodyOf(deposit)) };
    expect(walletMacProblem(ring, trail(), bodyOf(foreign), foreign, 101n)).toMatch(/MAC key "k\d{8}-[0-9a-f]{8}" is not in the key file/);
    const garbled = { ...deposit, mac: 'zz', macKeyId: ring.activeKeyId };
    expect(walletMacProblem(ring, trail(), bodyOf(garbled), garbled, 101n)).toMatch(/mac must be 64 lowercase hex digits/);
  });

  it('given events older than the key: they pass without a MAC, until one of their stream carries a MAC', () => {
    const trail = { macSeen: false };
    expect(walletMacProblem(ring, trail, bodyOf(deposit), deposit, 99n)).toBeUndefined();
    const signed = { ...deposit, ...ring.sign(bodyOf(deposit)) };
    expect(walletMacProblem(ring, trail, bodyOf(signed), signed, 100n)).toBeUndefined();
    // A MAC-less event after a MAC'd one is refused even at an old position (a rewritten log).
    expect(walletMacProblem(ring, trail, bodyOf(deposit), deposit, 100n)).toMatch(/an earlier event of its stream does/);
  });

  it('after a rotation: new events use the new key, events of the old key still verify', () => {
    const old = ring.active;
    const next = MacKeyRing.generate(500n).active;
    const rotated = new MacKeyRing([old, next], next.id);
    const before = { ...deposit, ...ring.sign(bodyOf(deposit)) };
    const after = { ...deposit, ...rotated.sign(bodyOf(deposit)) };
    expect(after.macKeyId).toBe(next.id);
    expect(rotated.macRequiredAfter).toBe(100n); // MACs began with the first key
    expect(walletMacProblem(rotated, { macSeen: false }, bodyOf(before), before, 200n)).toBeUndefined();
    expect(walletMacProblem(rotated, { macSeen: false }, bodyOf(after), after, 600n)).toBeUndefined();
  });

  it('never shows a secret when a ring is logged', () => {
    expect(JSON.stringify(ring)).toBe(JSON.stringify({ activeKeyId: ring.activeKeyId, keys: [ring.activeKeyId] }));
    expect(JSON.stringify(ring)).not.toContain(ring.active.secret.toString('hex'));
  });
});

describe('MAC key file', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'mesh-mac-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('is created on first use with mode 0600 in a folder of mode 0700, recording the log head, and read back the same', async () => {
    const path = join(dir, 'secrets', 'ledger-mac.key');
    const first = await ensureMacKeyRing(path, () => Promise.resolve(42n));
    expect(first.created).toBe(true);
    expect(first.ring.macRequiredAfter).toBe(42n);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, 'secrets')).mode & 0o777).toBe(0o700);
    const again = await ensureMacKeyRing(path, () => Promise.reject(new Error('not asked: the file exists')));
    expect(again.created).toBe(false);
    expect(again.ring.activeKeyId).toBe(first.ring.activeKeyId);
    expect(again.ring.active.secret.equals(first.ring.active.secret)).toBe(true);
  });

  it('two starts at once end with one key', async () => {
    const path = join(dir, 'ledger-mac.key');
    const [a, b] = await Promise.all([ensureMacKeyRing(path, () => Promise.resolve(1n)), ensureMacKeyRing(path, () => Promise.resolve(1n))]);
    expect(a.ring.activeKeyId).toBe(b.ring.activeKeyId);
    expect([a.created, b.created].filter(Boolean)).toHaveLength(1);
  });

  it('is absent: undefined (the audit then skips the MAC check)', async () => {
    expect(await readMacKeyRing(join(dir, 'none.key'))).toBeUndefined();
  });

  it('refuses a bad file naming the field and the rule, never quoting the secret', async () => {
    const path = join(dir, 'bad.key');
    const ring = MacKeyRing.generate(0n);
    const good = JSON.parse(keyFileText(ring)) as { activeKeyId: string; keys: Array<{ secret: string }> };
    writeFileSync(path, JSON.stringify({ ...good, keys: [{ ...good.keys[0], secret: 'ab12' }] }));
    await expect(readMacKeyRing(path)).rejects.toThrow(/bad\.key: keys\.0\.secret: must hold at least 32 bytes/);
    writeFileSync(path, JSON.stringify({ ...good, activeKeyId: 'other' }));
    await expect(readMacKeyRing(path)).rejects.toThrow(/activeKeyId other is not one of the keys/);
    writeFileSync(path, `${keyFileText(ring).slice(0, 40)}`);
    const err = await readMacKeyRing(path).catch((e: unknown) => e);
    expect(String(err)).toMatch(/not valid JSON/);
    expect(String(err)).not.toContain(good.keys[0].secret.slice(0, 8));
  });
});
