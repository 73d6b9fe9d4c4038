import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, readdirSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { nkeyAuthenticator, nkeys, type ConnectionOptions } from 'nats';
import { z } from 'zod';
import {
  EventSubjects,
  SERVICES,
  inboxPrefixOf,
  partitionMappings,
  permissionsOf,
  tenantIdProblem,
  type Identity,
  type NatsPermissions,
  type ServiceName,
} from '@mesh/contracts';

/**
 * Identities of a mesh stack on NATS (docs/security.md): one nkey per service, one for the
 * operator, one per tenant. Their seeds live in credentials files under `<dataDir>/secrets/nats/`
 * (0600, folder 0700); the nats-server authorization block (`<dataDir>/nats/auth.conf`) is generated
 * from the folder and the permission table (libs/contracts/src/permissions.ts), so adding a tenant
 * is: write its file, regenerate, reload the server.
 */

/** The part of nats.js's `nkeys` used here (its re-export reaches the linter untyped). */
interface NKeyPair {
  getSeed(): Uint8Array;
  getPublicKey(): string;
}
const keys = nkeys as unknown as { createUser(): NKeyPair; fromSeed(seed: Uint8Array): NKeyPair };

export const credsFileSchema = z.object({
  kind: z.enum(['service', 'operator', 'tenant']),
  name: z.string().min(1).max(128),
  tenantId: z.string().min(1).max(128).optional(),
  nkeySeed: z.string().regex(/^SU[A-Z2-7]{56}$/, { error: 'must be a user nkey seed (SU...)' }),
  servers: z.array(z.string().max(512)).max(16).optional(),
  ledgerHttpToken: z.string().max(1024).optional(),
});
export type CredsFile = z.output<typeof credsFileSchema>;

/** Tenants per stack: the authorization block is one file the server reads on every reload. */
export const TENANTS_MAX = 10_000;

export const secretsDir = (dataDir: string) => join(dataDir, 'secrets');
export const natsSecretsDir = (dataDir: string) => join(secretsDir(dataDir), 'nats');
export const tenantsDir = (dataDir: string) => join(natsSecretsDir(dataDir), 'tenants');
export const authConfPath = (dataDir: string) => join(dataDir, 'nats', 'auth.conf');
export const natsPidPath = (dataDir: string) => join(dataDir, 'nats', 'nats.pid');
/** The stack's partition count (docs/cluster.md "Partitions"): written once, before the log exists. */
export const partitionsPath = (dataDir: string) => join(dataDir, 'nats', 'partitions');
export const serviceCredsPath = (dataDir: string, service: ServiceName) => join(natsSecretsDir(dataDir), `${service}.json`);
export const operatorCredsPath = (dataDir: string) => join(natsSecretsDir(dataDir), 'operator.json');
export const tenantCredsPath = (dataDir: string, tenantId: string) => join(tenantsDir(dataDir), `${tenantId}.json`);
/** The ledger's HTTP bearer-token key (LEDGER_HTTP_TOKEN_KEY_FILE default): 32 random bytes, hex. */
export const ledgerHttpTokenKeyPath = (dataDir: string) => join(secretsDir(dataDir), 'ledger-http-token.key');

/** The identity a credentials file stands for. */
export function identityOf(creds: CredsFile): Identity {
  if (creds.kind === 'service') {
    if (!(SERVICES as readonly string[]).includes(creds.name)) throw new Error(`credentials: "${creds.name}" is not a mesh service`);
    return { kind: 'service', name: creds.name as ServiceName };
  }
  if (creds.kind === 'operator') return { kind: 'operator', name: 'operator' };
  const tenantId = creds.tenantId ?? creds.name;
  const problem = tenantIdProblem(tenantId);
  if (problem) throw new Error(`credentials: tenantId ${problem}`);
  return { kind: 'tenant', name: tenantId, tenantId };
}

export function readCreds(path: string): CredsFile {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new Error(`credentials file ${path} cannot be read as JSON: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
  const parsed = credsFileSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new Error(`credentials file ${path}: ${issue?.path.join('.') || '(file)'} ${issue?.message ?? 'is invalid'}`);
  }
  return parsed.data;
}

/** Writes a file readable by its owner only, atomically (a reader never sees half a key). */
function writeSecret(path: string, content: string): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  chmodSync(dirname(path), 0o700);
  const temp = `${path}.${process.pid}.tmp`;
  writeFileSync(temp, content, { mode: 0o600 });
  chmodSync(temp, 0o600);
  renameSync(temp, path);
}

function newCreds(identity: Identity, extra: Partial<CredsFile> = {}): CredsFile {
  const seed = new TextDecoder().decode(keys.createUser().getSeed());
  return {
    kind: identity.kind,
    name: identity.name,
    ...(identity.kind === 'tenant' ? { tenantId: identity.tenantId } : {}),
    nkeySeed: seed,
    ...extra,
  };
}

/** Writes credentials for `identity` unless the file exists (keys are kept across starts). Returns the path. */
function ensureCreds(path: string, identity: Identity, extra: Partial<CredsFile> = {}): string {
  if (!existsSync(path)) writeSecret(path, `${JSON.stringify(newCreds(identity, extra), null, 2)}\n`);
  return path;
}

export interface StackIdentities {
  services: Record<ServiceName, string>;
  operator: string;
  authConf: string;
  ledgerHttpTokenKey: string;
  /** The cluster block's route authorization (routeAuthConfPath) and the secret routes present. */
  routeAuthConf: string;
  routeSecret: string;
}

/**
 * Routes between the servers of a NATS cluster (docs/cluster.md): the `authorization` block a
 * server's `cluster {}` includes, so a server that does not present the stack's route secret cannot
 * join (it would receive every message and could take part in JetStream's replication). One user,
 * a random secret in `secrets/nats/route.secret` (0600), shared by the stack's servers.
 */
export const ROUTE_USER = 'mesh-route';
export const routeSecretPath = (dataDir: string) => join(natsSecretsDir(dataDir), 'route.secret');
export const routeAuthConfPath = (dataDir: string) => join(dataDir, 'nats', 'route-auth.conf');

/** The `authorization` block of a cluster block: the one route user with the stack's route secret. */
const routeAuthorization = (secret: string) => `authorization { user: "${ROUTE_USER}", password: "${secret}" }`;

/** A route URL that authenticates with the stack's route secret (hex: nothing to escape). */
export const routeUrl = (secret: string, hostPort: string) => `nats-route://${ROUTE_USER}:${secret}@${hostPort}`;

/**
 * The cluster block's part for servers whose routes are the same list everywhere (the Swarm stack:
 * `nats-1:6222`...): the route authorization and the routes with the secret, written next to
 * auth.conf (0600) as `nats/routes.conf`. Returns its path.
 */
export function writeRoutesConf(dataDir: string, hostPorts: readonly string[]): string {
  const { routeSecret } = ensureRouteAuth(dataDir);
  const path = join(dataDir, 'nats', 'routes.conf');
  const routes = hostPorts.map((hostPort) => `  ${JSON.stringify(routeUrl(routeSecret, hostPort))}`).join('\n');
  writeSecret(
    path,
    `# Generated by libs/identity (mesh cluster up): the routes and their authorization, with the stack's route secret. Do not edit.\n${routeAuthorization(routeSecret)}\nroutes: [\n${routes}\n]\n`,
  );
  return path;
}

function ensureRouteAuth(dataDir: string): { routeAuthConf: string; routeSecret: string } {
  const secretPath = routeSecretPath(dataDir);
  if (!existsSync(secretPath)) writeSecret(secretPath, `${randomBytes(32).toString('hex')}\n`);
  const routeSecret = readFileSync(secretPath, 'utf8').trim();
  if (!/^[0-9a-f]{64}$/.test(routeSecret)) throw new Error(`${secretPath}: not a route secret (64 hex digits); remove it to have a new one written`);
  const routeAuthConf = routeAuthConfPath(dataDir);
  writeSecret(
    routeAuthConf,
    `# Generated by libs/identity (mesh security init): routes must present the stack's route secret. Do not edit.\n${routeAuthorization(routeSecret)}\n`,
  );
  return { routeAuthConf, routeSecret };
}

/**
 * First start creates the services' and operator's credentials and the ledger's HTTP token key;
 * later starts keep them. The authorization block is regenerated every time from the folder.
 */
export function ensureStackIdentities(dataDir: string): StackIdentities {
  const services = Object.fromEntries(SERVICES.map((s) => [s, ensureCreds(serviceCredsPath(dataDir, s), { kind: 'service', name: s })])) as Record<
    ServiceName,
    string
  >;
  const operator = ensureCreds(operatorCredsPath(dataDir), { kind: 'operator', name: 'operator' });
  const keyPath = ledgerHttpTokenKeyPath(dataDir);
  if (!existsSync(keyPath)) writeSecret(keyPath, `${randomBytes(32).toString('hex')}\n`);
  mkdirSync(tenantsDir(dataDir), { recursive: true, mode: 0o700 });
  const authConf = writeAuthConf(dataDir);
  return { services, operator, authConf, ledgerHttpTokenKey: keyPath, ...ensureRouteAuth(dataDir) };
}

export function listTenants(dataDir: string): string[] {
  const dir = tenantsDir(dataDir);
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .map((f) => f.slice(0, -'.json'.length))
    .sort();
}

/**
 * Writes a tenant's credentials (kept if they exist) and regenerates the authorization block; the
 * caller reloads nats-server. `ledgerHttpToken`: the tenant's bearer token for the ledger's HTTP API.
 */
export function createTenantIdentity(
  dataDir: string,
  tenantId: string,
  extra: Pick<CredsFile, 'servers' | 'ledgerHttpToken'> = {},
): { path: string; created: boolean } {
  const problem = tenantIdProblem(tenantId);
  if (problem) throw new Error(`tenant id: ${problem}`);
  const path = tenantCredsPath(dataDir, tenantId);
  const created = !existsSync(path);
  if (created && listTenants(dataDir).length >= TENANTS_MAX) throw new Error(`tenants: at most ${TENANTS_MAX} per stack`);
  ensureCreds(path, { kind: 'tenant', name: tenantId, tenantId }, extra);
  writeAuthConf(dataDir);
  return { path, created };
}

/** Every credentials file of the stack: services, operator, tenants. */
function allCreds(dataDir: string): CredsFile[] {
  const paths = [
    ...SERVICES.map((s) => serviceCredsPath(dataDir, s)),
    operatorCredsPath(dataDir),
    ...listTenants(dataDir).map((t) => tenantCredsPath(dataDir, t)),
  ];
  return paths.filter((p) => existsSync(p)).map(readCreds);
}

export const publicKeyOf = (seed: string) => keys.fromSeed(new TextEncoder().encode(seed)).getPublicKey();

/**
 * The nats-server `authorization` block: one nkey user per identity with its permissions. With it
 * the server refuses every connection that does not sign with one of these keys (no anonymous user).
 * Public keys and permissions only: no secret is written here.
 */
export function renderAuthConf(creds: readonly CredsFile[], partitions = 1): string {
  const users = creds.map((c) => {
    const identity = identityOf(c);
    return `    # ${identity.kind} ${identity.name}\n    { nkey: ${publicKeyOf(c.nkeySeed)}, permissions: ${renderPermissions(permissionsOf(identity, { partitions }))} }`;
  });
  return `# Generated by libs/identity from libs/contracts/src/permissions.ts and the keys in secrets/nats/ (mesh security init): do not edit.\n${renderMappings(partitions)}authorization {\n  users = [\n${users.join(',\n')}\n  ]\n}\n`;
}

/** The account's subject mappings of a partitioned log as nats-server config ('' for 1 partition): the partition of every event is the server's (contracts subjects.ts). */
export function renderMappings(partitions: number): string {
  const mappings = Object.entries(partitionMappings(partitions)).map(([from, to]) => `  ${JSON.stringify(from)}: ${JSON.stringify(to)}`);
  return mappings.length > 0 ? `# ${partitions} partitions (docs/cluster.md "Partitions")\nmappings = {\n${mappings.join('\n')}\n}\n` : '';
}

/** The stack's partition count: 1 (no mapping) until set. */
export function stackPartitions(dataDir: string): number {
  const path = partitionsPath(dataDir);
  if (!existsSync(path)) return 1;
  const text = readFileSync(path, 'utf8').trim();
  const partitions = Number(text);
  return new EventSubjects(/^\d+$/.test(text) ? partitions : Number.NaN).partitions;
}

/**
 * Sets the stack's partition count (written next to auth.conf, which every later regeneration takes
 * it from). It is part of the stored subjects, so it cannot change once events are written: the
 * caller passes `logExists` and a different count is then refused with the reason.
 */
export function setStackPartitions(dataDir: string, partitions: number, logExists: boolean): void {
  new EventSubjects(partitions); // validates
  const current = stackPartitions(dataDir);
  if (current === partitions) return;
  if (logExists) {
    throw new Error(
      `partitions: the log of ${dataDir} was created with ${current} partition(s), not ${partitions}: the partition is part of every stored subject, so it is fixed when the log is created (start with --partitions ${current}, or on a new data dir)`,
    );
  }
  mkdirSync(dirname(partitionsPath(dataDir)), { recursive: true });
  writeFileSync(partitionsPath(dataDir), `${partitions}\n`);
}

/** Permissions as nats-server config (JSON is valid there; quoted, so `$JS...` is no variable reference). */
function renderPermissions(p: NatsPermissions): string {
  const list = (subjects: string[]) => JSON.stringify(subjects);
  const side = (s: { allow: string[]; deny: string[] }) => `{ allow: ${list(s.allow)}${s.deny.length ? `, deny: ${list(s.deny)}` : ''} }`;
  return `{ publish: ${side(p.publish)}, subscribe: ${side(p.subscribe)}${p.allow_responses ? ', allow_responses: true' : ''} }`;
}

export function writeAuthConf(dataDir: string): string {
  const path = authConfPath(dataDir);
  mkdirSync(dirname(path), { recursive: true });
  writeSecret(path, renderAuthConf(allCreds(dataDir), stackPartitions(dataDir)));
  return path;
}

/** Servers of a local cluster at most (cli/stack.ts NATS_CLUSTER_SIZE_MAX, provision.sh nats-cluster-up). */
const NATS_CLUSTER_SERVERS_MAX = 5;

/** The pidfile of server `index` of a local cluster (provision.sh nats-cluster-up: `<dataDir>/nats-cluster/<i>/nats.pid`). */
export const natsClusterPidPath = (dataDir: string, index: number) => join(dataDir, 'nats-cluster', String(index), 'nats.pid');

/**
 * Asks every nats-server running from `dataDir` to reload its config (SIGHUP), so a new tenant can
 * connect to any of them: the single server (`<dataDir>/nats/nats.pid`) and each server of a local
 * cluster (`<dataDir>/nats-cluster/<i>/nats.pid`). Each reads the same auth.conf. Returns the pids
 * signalled (none when no server runs from that data dir).
 */
export function reloadNatsServer(dataDir: string): number[] {
  const pidfiles = [natsPidPath(dataDir)];
  for (let i = 0; i < NATS_CLUSTER_SERVERS_MAX && existsSync(dirname(natsClusterPidPath(dataDir, i))); i++) pidfiles.push(natsClusterPidPath(dataDir, i));
  const reloaded: number[] = [];
  for (const pidfile of pidfiles) {
    let pid: number;
    try {
      pid = Number(readFileSync(pidfile, 'utf8').trim());
    } catch {
      continue; // not running (or never started)
    }
    if (!Number.isInteger(pid) || pid <= 0) continue;
    try {
      process.kill(pid, 'SIGHUP');
      reloaded.push(pid);
    } catch {
      // a stale pidfile: that server is not running
    }
  }
  return reloaded;
}

/** Connection options of an identity: its nkey signs the server's nonce, its replies come to its own inbox prefix. */
export function natsAuthOptions(creds: CredsFile): Pick<ConnectionOptions, 'authenticator' | 'inboxPrefix'> {
  return {
    authenticator: nkeyAuthenticator(new TextEncoder().encode(creds.nkeySeed)),
    inboxPrefix: inboxPrefixOf(identityOf(creds)),
  };
}

/** The same from a file (NATS_CREDS_FILE, --creds). */
export const natsAuthOptionsFromFile = (path: string) => natsAuthOptions(readCreds(path));
