import { copyFileSync, chmodSync } from 'node:fs';
import type { Command } from 'commander';
import { nanos } from 'nats';
import { messageOf, RetriesExhaustedError, retry } from '@mesh/common';
import { bucketReplicas } from '@mesh/eventstore';
import { OBJECT_STORE_DEFAULTS, inputBucketOf, outputBucketOf, tenantIdProblem } from '@mesh/contracts';
import { httpTokenFor, readHttpTokenKey } from '@mesh/audit/http-token';
import { createTenantIdentity, ensureStackIdentities, listTenants, reloadNatsServer, tenantCredsPath } from '@mesh/identity';
import { natsUrl, withNats } from '../connection';
import { CliError, UsageError, emit, progress, table } from '../output';
import { DATA_DIR } from '../stack';

/** Connections tried while the servers apply the reload (100 ms doubling to 1 s between them: about 6 s in all). */
const RELOAD_CONNECT_ATTEMPTS = 10;
/** Bytes one tenant's bucket may hold (each of its two buckets): 1 GiB unless TENANT_BUCKET_MAX_BYTES says otherwise. */
const TENANT_BUCKET_MAX_BYTES_DEFAULT = 1024 ** 3;

function envBytes(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < 1) throw new UsageError(`${name} must be a whole number of bytes >= 1, got "${raw}"`);
  return n;
}

/**
 * `mesh security init`: the stack's identities on first start (services, operator, the ledger's
 * HTTP token key) and the nats-server authorization block; later runs keep the keys and regenerate
 * the block (provision.sh runs it before starting nats-server).
 */
export function registerSecurity(program: Command) {
  const security = program.command('security').description('identities and NATS permissions of the local stack (docs/security.md)');
  security
    .command('init')
    .description('create the missing credentials under <data dir>/secrets/nats/ and write <data dir>/nats/auth.conf (idempotent)')
    .action(() => {
      const ids = ensureStackIdentities(DATA_DIR);
      emit({ authConf: ids.authConf, operator: ids.operator, services: ids.services }, () => {
        progress(`credentials in ${DATA_DIR}/secrets/nats/ (operator: ${ids.operator}); authorization block ${ids.authConf}`);
      });
    });
}

export function registerTenant(program: Command) {
  const tenant = program.command('tenant').description('tenants: their NATS identities and object buckets (operator)');
  tenant
    .command('create <id>')
    .description('create a tenant: its credentials file, its NATS permissions (server reloaded), its input and output buckets')
    .option('--out <file>', 'also copy the credentials file there (mode 0600)')
    .addHelpText(
      'after',
      '\nAct as the tenant with: mesh --creds <file> ... (or MESH_CREDS=<file>). Bucket quota: TENANT_BUCKET_MAX_BYTES (default 1 GiB); object TTL: OBJECT_TTL_MS.',
    )
    .action(async (id: string, opts: { out?: string }) => {
      const problem = tenantIdProblem(id);
      if (problem) throw new UsageError(`<id>: ${problem}`);
      const maxBytes = envBytes('TENANT_BUCKET_MAX_BYTES', TENANT_BUCKET_MAX_BYTES_DEFAULT);
      const ttlMs = envBytes('OBJECT_TTL_MS', OBJECT_STORE_DEFAULTS.ttlMs);
      const { ledgerHttpTokenKey } = ensureStackIdentities(DATA_DIR);
      // The tenant's bearer token for the ledger's HTTP API travels in its credentials file (docs/ledger.md).
      const key = await readHttpTokenKey(ledgerHttpTokenKey);
      if (!key) throw new CliError(`no ledger HTTP token key at ${ledgerHttpTokenKey}`, 'run `mesh security init` (mesh up does)');
      const { path, created } = createTenantIdentity(DATA_DIR, id, { servers: [natsUrl()], ledgerHttpToken: httpTokenFor(key, id) });
      // Every server of the stack (each server of a cluster too): a tenant connects to any of them.
      if (reloadNatsServer(DATA_DIR).length === 0) {
        throw new CliError(
          `tenant ${id}: credentials written to ${path}, but no nats-server runs from ${DATA_DIR} to reload`,
          'start the stack (`mesh up --detach`), then run `mesh tenant create` again to create its buckets',
        );
      }
      // A server swaps its authorization block when it gets to the SIGHUP: a connection in that
      // instant can be refused (seen in test/security, about one run in three), so it is tried again.
      const createBuckets = () =>
        withNats(async (nc) => {
          const js = nc.jetstream();
          const replicas = await bucketReplicas(nc);
          for (const bucket of [inputBucketOf(id), outputBucketOf(id)]) await js.views.os(bucket, { max_bytes: maxBytes, ttl: nanos(ttlMs), replicas });
        });
      await retry(`tenant ${id}: buckets`, createBuckets, {
        attempts: RELOAD_CONNECT_ATTEMPTS,
        baseDelayMs: 100,
        maxDelayMs: 1000,
        retryable: (err) => /refused the credentials/.test(messageOf(err)),
      }).catch((err: unknown) => {
        throw err instanceof RetriesExhaustedError ? err.cause : err;
      });
      if (opts.out) {
        copyFileSync(path, opts.out);
        chmodSync(opts.out, 0o600);
      }
      emit({ tenantId: id, created, creds: path, out: opts.out, buckets: [inputBucketOf(id), outputBucketOf(id)] }, () => {
        console.log(`tenant ${id} ${created ? 'created' : 'exists (credentials kept)'}; credentials: ${path}${opts.out ? ` (copied to ${opts.out})` : ''}`);
        console.log(
          `buckets: ${inputBucketOf(id)} (inputs, read/write), ${outputBucketOf(id)} (outputs, read only); act as it: mesh --creds ${opts.out ?? path} ...`,
        );
      });
    });
  tenant
    .command('list')
    .description('tenants with credentials in this data dir')
    .action(() => {
      const tenants = listTenants(DATA_DIR).map((id) => ({ tenant: id, creds: tenantCredsPath(DATA_DIR, id) }));
      emit({ tenants }, () => table(tenants));
    });
}
