import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect, type ConnectionOptions, type NatsConnection } from 'nats';
import { messageOf } from '@mesh/common';
import type { ServiceName } from '@mesh/contracts';
import {
  authConfPath,
  createTenantIdentity,
  ensureStackIdentities,
  renderMappings,
  setStackPartitions,
  natsAuthOptionsFromFile,
  natsPidPath,
  operatorCredsPath,
  serviceCredsPath,
  tenantCredsPath,
  type StackIdentities,
} from '@mesh/identity';

/** Who a test connects as on an auth-enabled server (`anonymous` has no credentials at all). */
export type TestIdentity = { kind: 'service'; name: ServiceName } | { kind: 'operator' } | { kind: 'tenant'; tenantId: string } | { kind: 'anonymous' };

export interface NatsServerOptions {
  /**
   * Start with the authorization block libs/identity generates (services, operator, tenants as nkey
   * users with the permissions of libs/contracts/src/permissions.ts), from a temp data dir.
   */
  auth?: boolean;
  /** Partition the event subjects (the server's mapping as libs/identity writes it; docs/cluster.md "Partitions"). */
  partitions?: number;
}

/**
 * A real `nats-server -js` on a free loopback port with a temp store, for integration tests.
 * `restart()` stops and starts it on the same port and store, to test reconnects.
 */
export class NatsServerProcess {
  private child?: ChildProcess;
  private log = '';
  /** With `auth`: the stack's data dir (secrets/nats/*.json, nats/auth.conf) and its identities. */
  readonly dataDir?: string;
  readonly identities?: StackIdentities;
  private constructor(
    readonly port: number,
    readonly storeDir: string,
    auth: boolean,
    readonly partitions = 1,
  ) {
    if (auth) {
      this.dataDir = join(storeDir, 'data');
      setStackPartitions(this.dataDir, partitions, false);
      this.identities = ensureStackIdentities(this.dataDir);
    }
  }

  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  static async start(options: NatsServerOptions = {}): Promise<NatsServerProcess> {
    const server = new NatsServerProcess(await freePort(), mkdtempSync(join(tmpdir(), 'mesh-nats-')), options.auth ?? false, options.partitions);
    await server.spawn();
    return server;
  }

  /** The server's recent log lines (stderr; with `auth` it logs permission violations there). */
  get logs(): string {
    return this.log;
  }

  private async spawn(): Promise<void> {
    const bin = process.env.NATS_SERVER_BIN ?? 'nats-server';
    let args = ['-js', '-a', '127.0.0.1', '-p', String(this.port), '-sd', this.storeDir];
    if (this.dataDir) {
      // Everything in the file: a reload (SIGHUP, new tenant) re-reads the file, and JetStream
      // enabled only by flags does not survive it. The include is resolved relative to this file.
      const conf = join(dirname(authConfPath(this.dataDir)), 'nats.conf');
      writeFileSync(
        conf,
        // The pidfile where provision.sh keeps it: `mesh tenant create` reloads the server through it.
        `host: 127.0.0.1\nport: ${this.port}\npid_file: "${natsPidPath(this.dataDir)}"\njetstream { store_dir: "${this.storeDir}" }\ninclude "${basename(authConfPath(this.dataDir))}"\n`,
      );
      args = ['-c', conf];
    } else if (this.partitions > 1) {
      // No authorization: the mapping alone (with auth it is in the generated auth.conf).
      const conf = join(this.storeDir, 'nats.conf');
      writeFileSync(conf, `host: 127.0.0.1\nport: ${this.port}\njetstream { store_dir: "${this.storeDir}" }\n${renderMappings(this.partitions)}`);
      args = ['-c', conf];
    }
    const child = spawn(bin, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    this.child = child;
    child.stderr?.on('data', (chunk) => (this.log = (this.log + chunk).slice(-200_000)));
    const failed = new Promise<never>((_, reject) => {
      child.once('error', (err) => reject(new Error(`cannot start ${bin}: ${err.message}. Run: bash infra/local/provision.sh install`, { cause: err })));
      child.once('exit', (code) => reject(new Error(`nats-server exited with ${code}: ${this.log.slice(-4000)}`)));
    });
    const probe = this.dataDir ? natsAuthOptionsFromFile(operatorCredsPath(this.dataDir)) : {};
    await Promise.race([waitForPort(this.port, 10_000, probe), failed]);
  }

  async connect(name = 'test'): Promise<NatsConnection> {
    // On an auth-enabled server, `connect()` is the operator (what most test code wants to do).
    const auth = this.dataDir ? natsAuthOptionsFromFile(operatorCredsPath(this.dataDir)) : {};
    return connect({ servers: this.url, name, maxReconnectAttempts: -1, reconnectTimeWait: 100, noAsyncTraces: true, ...auth });
  }

  /** The credentials file of an identity (auth mode only). */
  credsPath(identity: Exclude<TestIdentity, { kind: 'anonymous' }>): string {
    const dataDir = this.requireAuth();
    if (identity.kind === 'service') return serviceCredsPath(dataDir, identity.name);
    if (identity.kind === 'operator') return operatorCredsPath(dataDir);
    return tenantCredsPath(dataDir, identity.tenantId);
  }

  /** Connects as `identity` (its nkey and inbox prefix); anonymous connects with no credentials. No reconnects: a refusal surfaces. */
  async connectAs(identity: TestIdentity, options: Partial<ConnectionOptions> = {}): Promise<NatsConnection> {
    const auth = identity.kind === 'anonymous' ? {} : natsAuthOptionsFromFile(this.credsPath(identity));
    return connect({ servers: this.url, name: `test-${identity.kind}`, noAsyncTraces: true, reconnect: false, timeout: 5000, ...auth, ...options });
  }

  /** Creates a tenant's identity, regenerates the authorization block and reloads the server (SIGHUP), waiting until the tenant can connect. */
  async createTenant(tenantId: string): Promise<string> {
    const dataDir = this.requireAuth();
    const { path } = createTenantIdentity(dataDir, tenantId);
    await this.reload();
    await eventually(
      async () => {
        const nc = await this.connectAs({ kind: 'tenant', tenantId });
        await nc.close();
        return true;
      },
      10_000,
      `tenant ${tenantId} accepted after reload`,
    );
    return path;
  }

  /** Reloads the server's configuration (SIGHUP), e.g. after the authorization block changed. */
  async reload(): Promise<void> {
    this.child?.kill('SIGHUP');
    await sleep(0);
  }

  private requireAuth(): string {
    if (!this.dataDir) throw new Error('this nats-server was started without auth (NatsServerProcess.start({ auth: true }))');
    return this.dataDir;
  }

  async stop(): Promise<void> {
    if (this.child) await stopChild(this.child);
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.spawn();
  }

  async dispose(): Promise<void> {
    await this.stop();
    rmSync(this.storeDir, { recursive: true, force: true });
  }
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const address = srv.address();
      srv.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

async function waitForPort(port: number, timeoutMs: number, auth: Partial<ConnectionOptions> = {}): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const nc = await connect({ servers: `nats://127.0.0.1:${port}`, timeout: 500, reconnect: false, ...auth });
      await nc.close();
      return;
    } catch (err) {
      if (Date.now() > deadline) throw new Error(`nats-server did not listen on ${port} within ${timeoutMs} ms: ${messageOf(err)}`, { cause: err });
      await sleep(50);
    }
  }
}

/** Polls `check` until it returns a truthy value (bounded), for eventually-consistent assertions. */
export async function eventually<T>(check: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 15_000, what = 'condition'): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value) return value;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError ? `: ${messageOf(lastError)}` : ''}`, { cause: lastError });
    }
    await sleep(25);
  }
}

/** SIGTERM, then SIGKILL if the process has not exited within 5 s (the timer is cancelled as soon as it has). */
export async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const killTimer = new AbortController();
  await Promise.race([
    exited,
    sleep(5000, undefined, { signal: killTimer.signal, ref: false }).then(
      () => child.kill('SIGKILL'),
      () => undefined,
    ),
  ]);
  killTimer.abort();
  await exited;
}
