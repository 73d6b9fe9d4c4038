import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SERVICES } from '@mesh/contracts';
import { authConfPath, createTenantIdentity, ensureStackIdentities, listTenants, readCreds, tenantsDir } from './index';

describe('stack identities', () => {
  let dataDir: string;
  beforeEach(() => (dataDir = mkdtempSync(join(tmpdir(), 'mesh-identity-'))));
  afterEach(() => rmSync(dataDir, { recursive: true, force: true }));

  it('creates owner-only credentials once and keeps them on later starts', () => {
    const first = ensureStackIdentities(dataDir);
    const seeds = SERVICES.map((s) => readCreds(first.services[s]).nkeySeed);
    const second = ensureStackIdentities(dataDir);
    expect(SERVICES.map((s) => readCreds(second.services[s]).nkeySeed)).toEqual(seeds);
    expect(statSync(first.operator).mode & 0o777).toBe(0o600);
    expect(statSync(first.ledgerHttpTokenKey).mode & 0o777).toBe(0o600);
    expect(statSync(tenantsDir(dataDir)).mode & 0o777).toBe(0o700);
    expect(readFileSync(first.ledgerHttpTokenKey, 'utf8').trim()).toMatch(/^[0-9a-f]{64}$/);
  });

  it('writes public keys and permissions to auth.conf, never a seed, one user per identity and tenant', () => {
    ensureStackIdentities(dataDir);
    const { path } = createTenantIdentity(dataDir, 'alice');
    const conf = readFileSync(authConfPath(dataDir), 'utf8');
    expect(conf).not.toContain(readCreds(path).nkeySeed);
    expect(conf).not.toMatch(/SU[A-Z2-7]{56}/);
    expect(conf.match(/nkey: U[A-Z2-7]{55}/g)).toHaveLength(SERVICES.length + 2);
    expect(conf).toContain('"mesh.tenant.alice.api.>"');
    expect(listTenants(dataDir)).toEqual(['alice']);
  });

  it('refuses a reserved or malformed tenant id, naming the rule', () => {
    expect(() => createTenantIdentity(dataDir, 'operator')).toThrow(/tenant id: "operator" is reserved/);
    expect(() => createTenantIdentity(dataDir, 'a.b')).toThrow(/tenant id: must match/);
  });
});
