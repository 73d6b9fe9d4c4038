import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { connect, type ConnectionOptions, type NatsConnection } from 'nats';
import { messageOf } from '@mesh/common';
import { EVENTS_STREAM } from '@mesh/contracts';
import {
  ensureStackIdentities,
  routeAuthConfPath,
  routeUrl,
  setStackPartitions,
  natsAuthOptionsFromFile,
  natsClusterPidPath,
  operatorCredsPath,
  serviceCredsPath,
  tenantCredsPath,
  type StackIdentities,
} from '@mesh/identity';
import { eventually, freePort, stopChild, type TestIdentity } from './nats-server';

/** Servers of a test cluster: JetStream needs a majority, so 3 (or 5) for anything that should survive a loss. */
const CLUSTER_SIZE_MAX = 5;
/** How long a server may take to accept connections, and the cluster to elect its JetStream meta leader. */
const START_TIMEOUT_MS = 30_000;
/** Per-server log kept in memory (stderr tail), for a failure message. */
const LOG_TAIL_CHARS = 100_000;

export interface NatsClusterOptions {
  /** Number of servers (default 3). */
  size?: number;
  /** Every server gets the authorization block libs/identity generates (as NatsServerProcess's `auth`). */
  auth?: boolean;
  /** With `auth`: partition the event subjects (as NatsServerProcess's `partitions`). */
  partitions?: number;
}

interface Member {
  readonly index: number;
  readonly name: string;
  readonly port: number;
  readonly clusterPort: number;
  readonly monitorPort: number;
  readonly storeDir: string;
  readonly conf: string;
  child?: ChildProcess;
  log: string;
}

/** One server's view of a stream in its own store (monitoring endpoint /jsz), not the leader's. */
export interface LocalStreamState {
  messages: number;
  lastSeq: number;
}

/**
 * N real `nats-server -js` processes on loopback, routed to each other as one cluster (`mesh`):
 * distinct client, cluster and monitoring ports, `server_name` mesh-<i>, a store dir each. With
 * `auth` the routes authenticate too (the cluster block includes libs/identity's route-auth.conf and
 * each route URL carries the route secret); without it they carry no authorization.
 */
export class NatsClusterProcess {
  readonly dataDir?: string;
  readonly identities?: StackIdentities;

  private constructor(
    readonly root: string,
    private readonly members: Member[],
    auth: boolean,
    partitions = 1,
  ) {
    if (auth) {
      this.dataDir = join(root, 'data');
      setStackPartitions(this.dataDir, partitions, false);
      this.identities = ensureStackIdentities(this.dataDir);
    }
  }

  static async start(options: NatsClusterOptions = {}): Promise<NatsClusterProcess> {
    const size = options.size ?? 3;
    if (!Number.isInteger(size) || size < 1 || size > CLUSTER_SIZE_MAX) throw new Error(`size: must be an integer in 1..${CLUSTER_SIZE_MAX}, got ${size}`);
    const root = mkdtempSync(join(tmpdir(), 'mesh-nats-cluster-'));
    const members: Member[] = [];
    for (let index = 0; index < size; index++) {
      const storeDir = join(root, String(index), 'jetstream');
      mkdirSync(storeDir, { recursive: true });
      members.push({
        index,
        name: `mesh-${index}`,
        port: await freePort(),
        clusterPort: await freePort(),
        monitorPort: await freePort(),
        storeDir,
        conf: '',
        log: '',
      });
    }
    if ((options.partitions ?? 1) > 1 && !options.auth)
      throw new Error('partitions: the mapping is part of the generated authorization config (start with auth: true)');
    const cluster = new NatsClusterProcess(root, members, options.auth ?? false, options.partitions);
    for (const m of members) (m as { conf: string }).conf = cluster.writeConf(m);
    await Promise.all(members.map((m) => cluster.spawn(m)));
    await cluster.waitForMetaLeader();
    return cluster;
  }

  get size(): number {
    return this.members.length;
  }

  /** The client URL of each server. */
  get urls(): string[] {
    return this.members.map((m) => `nats://127.0.0.1:${m.port}`);
  }

  /** All client URLs, comma-separated: the NATS_URL services and the CLI are given. */
  get url(): string {
    return this.urls.join(',');
  }

  nameOf(index: number): string {
    return this.member(index).name;
  }

  /** The index of a server by its `server_name`. */
  indexOf(serverName: string): number {
    const m = this.members.find((x) => x.name === serverName);
    if (!m) throw new Error(`no server named ${serverName} in this cluster (${this.members.map((x) => x.name).join(', ')})`);
    return m.index;
  }

  running(index: number): boolean {
    const child = this.member(index).child;
    return child !== undefined && child.exitCode === null && child.signalCode === null;
  }

  logsOf(index: number): string {
    return this.member(index).log;
  }

  private member(index: number): Member {
    const m = this.members[index];
    if (!m) throw new Error(`server index ${index}: this cluster has ${this.members.length} servers`);
    return m;
  }

  private writeConf(m: Member): string {
    // With auth, routes authenticate with the stack's route secret (libs/identity route-auth.conf).
    const secret = this.identities?.routeSecret;
    const routes = this.members
      .filter((x) => x !== m)
      .map((x) => (secret ? routeUrl(secret, `127.0.0.1:${x.clusterPort}`) : `nats-route://127.0.0.1:${x.clusterPort}`));
    const lines = [
      `server_name: ${m.name}`,
      `host: 127.0.0.1`,
      `port: ${m.port}`,
      `http: "127.0.0.1:${m.monitorPort}"`,
      `jetstream { store_dir: "${m.storeDir}" }`,
      `cluster {`,
      `  name: mesh`,
      `  host: 127.0.0.1`,
      `  port: ${m.clusterPort}`,
      `  routes: [${routes.map((r) => `"${r}"`).join(', ')}]`,
      ...(secret ? [`  include "${basename(routeAuthConfPath(this.dataDir!))}"`] : []),
      `}`,
    ];
    // Next to auth.conf, so the include (resolved relative to the including file) finds it.
    const dir = this.dataDir ? join(this.dataDir, 'nats') : join(this.root, String(m.index));
    if (this.dataDir) {
      lines.push(`include "auth.conf"`);
      // Where provision.sh puts it, so `mesh tenant create` (reloadNatsServer) finds every server.
      const pidFile = natsClusterPidPath(this.dataDir, m.index);
      mkdirSync(dirname(pidFile), { recursive: true });
      lines.push(`pid_file: "${pidFile}"`);
    }
    mkdirSync(dir, { recursive: true });
    const conf = join(dir, `nats-${m.index}.conf`);
    writeFileSync(conf, lines.join('\n') + '\n');
    return conf;
  }

  private async spawn(m: Member): Promise<void> {
    const bin = process.env.NATS_SERVER_BIN ?? 'nats-server';
    const child = spawn(bin, ['-c', m.conf], { stdio: ['ignore', 'ignore', 'pipe'] });
    m.child = child;
    child.stderr?.on('data', (chunk) => (m.log = (m.log + chunk).slice(-LOG_TAIL_CHARS)));
    const failed = new Promise<never>((_, reject) => {
      child.once('error', (err) => reject(new Error(`cannot start ${bin}: ${err.message}. Run: bash infra/local/provision.sh install`, { cause: err })));
      child.once('exit', (code, signal) => reject(new Error(`${m.name} exited with ${code ?? signal}: ${m.log.slice(-4000)}`)));
    });
    failed.catch(() => undefined); // an exit after the start is not a failure of the start
    await Promise.race([this.waitForClients(m), failed]);
  }

  private async waitForClients(m: Member): Promise<void> {
    await eventually(
      async () => {
        const nc = await connect({ servers: `nats://127.0.0.1:${m.port}`, timeout: 500, reconnect: false, ...this.operatorAuth });
        await nc.close();
        return true;
      },
      START_TIMEOUT_MS,
      `${m.name} accepting clients on ${m.port}`,
    );
  }

  /** JetStream answers only once the servers have elected a meta leader: until then the API is "temporarily unavailable". */
  async waitForMetaLeader(): Promise<void> {
    const nc = await this.connect('cluster-wait');
    try {
      await eventually(
        async () => {
          const jsm = await nc.jetstreamManager({ timeout: 2000 });
          await jsm.getAccountInfo();
          return true;
        },
        START_TIMEOUT_MS,
        'a JetStream meta leader',
      );
    } finally {
      await nc.close();
    }
  }

  private get operatorAuth(): Partial<ConnectionOptions> {
    return this.dataDir ? natsAuthOptionsFromFile(operatorCredsPath(this.dataDir)) : {};
  }

  /** A connection (the operator's on an auth-enabled cluster) that may use any server and reconnects forever. */
  async connect(name = 'test', options: Partial<ConnectionOptions> = {}): Promise<NatsConnection> {
    return connect({ servers: this.urls, name, maxReconnectAttempts: -1, reconnectTimeWait: 100, noAsyncTraces: true, ...this.operatorAuth, ...options });
  }

  /** A connection to server `index` only (no cluster discovery, no reconnect elsewhere). */
  async connectTo(index: number, name = 'test-direct'): Promise<NatsConnection> {
    return connect({
      servers: this.urls[index],
      name,
      ignoreClusterUpdates: true,
      reconnect: false,
      timeout: 5000,
      noAsyncTraces: true,
      ...this.operatorAuth,
    });
  }

  /** The credentials file of an identity (auth mode only), as NatsServerProcess.credsPath. */
  credsPath(identity: Exclude<TestIdentity, { kind: 'anonymous' }>): string {
    if (!this.dataDir) throw new Error('this cluster was started without auth (NatsClusterProcess.start({ auth: true }))');
    if (identity.kind === 'service') return serviceCredsPath(this.dataDir, identity.name);
    if (identity.kind === 'operator') return operatorCredsPath(this.dataDir);
    return tenantCredsPath(this.dataDir, identity.tenantId);
  }

  /** The `server_name` of the stream's current leader (asked through any running server). */
  async streamLeader(stream = EVENTS_STREAM): Promise<string> {
    const nc = await this.connect('leader-probe', { maxReconnectAttempts: 0, timeout: 3000 });
    try {
      const jsm = await nc.jetstreamManager({ timeout: 3000 });
      const leader = (await jsm.streams.info(stream)).cluster?.leader;
      if (!leader) throw new Error(`${stream} has no leader right now`);
      return leader;
    } finally {
      await nc.close();
    }
  }

  /**
   * What server `index` itself holds of a stream: its monitoring endpoint reports its own store,
   * whereas the JetStream API (stream info) is answered by the leader.
   */
  async localStreamState(index: number, stream = EVENTS_STREAM): Promise<LocalStreamState | undefined> {
    const m = this.member(index);
    const res = await fetch(`http://127.0.0.1:${m.monitorPort}/jsz?streams=true`);
    if (!res.ok) throw new Error(`${m.name} /jsz: HTTP ${res.status}`);
    const body = (await res.json()) as { account_details?: { stream_detail?: { name: string; state: { messages: number; last_seq: number } }[] }[] };
    for (const account of body.account_details ?? []) {
      for (const s of account.stream_detail ?? []) if (s.name === stream) return { messages: s.state.messages, lastSeq: s.state.last_seq };
    }
    return undefined;
  }

  /** Sends `signal` to server `index` and waits for it to exit. */
  async kill(index: number, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = this.member(index).child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill(signal);
    await exited;
  }

  /** Starts server `index` again with the same config, ports and store (after a kill). */
  async restart(index: number): Promise<void> {
    const m = this.member(index);
    if (this.running(index)) await this.stopOne(m);
    await this.spawn(m);
  }

  private async stopOne(m: Member): Promise<void> {
    if (m.child) await stopChild(m.child);
  }

  /** Stops every server and removes the stores (and the generated identities). */
  async dispose(): Promise<void> {
    await Promise.all(this.members.map((m) => this.stopOne(m).catch((err: unknown) => console.warn(`${m.name}: ${messageOf(err)}`))));
    rmSync(this.root, { recursive: true, force: true });
  }
}
