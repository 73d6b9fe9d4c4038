import { spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect } from 'nats';
import { z } from 'zod';
import {
  EVENTS_STREAM,
  LEASED_SERVICES,
  SERVICES,
  healthReplySchema,
  storageRequest,
  storageStatusSchema,
  type ServiceName,
  type StorageStatus,
} from '@mesh/contracts';
import { ledgerHttpTokenKeyPath, serviceCredsPath } from '@mesh/identity';
import { readLeases } from '@mesh/runtime/lease';
import { cliAuthOptions, natsServers, natsUrl } from './connection';
import { CliError, progress } from './output';

/** The repository root: the first folder up with a package.json (dist/ has none). */
function findRoot(from: string): string {
  for (let dir = from; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    if (dirname(dir) === dir) throw new Error(`no package.json above ${from}`);
  }
}
export const ROOT = findRoot(__dirname);
/** bin/runtime.js: whether to run compiled or from source. Plain JS shared with bin/mesh.js (it runs before anything is compiled), so loaded by path. */
const runtime = createRequire(__filename)(join(ROOT, 'bin', 'runtime.js')) as { DIST: string; compiledIsFresh(): boolean };
export const DATA_DIR = process.env.MESH_DATA_DIR ?? join(ROOT, '.data');
const RUN_DIR = join(DATA_DIR, 'run');
export const LOG_DIR = join(DATA_DIR, 'logs');
/** How long `mesh up` waits for a service to answer health before giving up. */
const HEALTH_TIMEOUT_MS = 120_000;
const STOP_TIMEOUT_MS = 15_000;
/** provision.sh's default max_file_store (NATS_MAX_FILE_STORE_BYTES), which the scheduler needs as its capacity: JetStream does not report it. */
const NATS_MAX_FILE_STORE_BYTES_DEFAULT = '10737418240';

export interface ServiceStatus {
  service: ServiceName;
  pid?: number;
  running: boolean;
  healthy: boolean;
  uptimeMs?: number;
  positions?: Record<string, string>;
  log: string;
}

/** A health reply, as far as the status needs it. */
const healthAnswerSchema = z.object({ ok: z.literal(true), data: healthReplySchema.pick({ status: true, uptimeMs: true, positions: true }) });

const pidFile = (s: ServiceName) => join(RUN_DIR, `${s}.pid`);
export const logFile = (s: ServiceName) => join(LOG_DIR, `${s}.log`);

/** The pid in a pid file; undefined when there is none or it holds no pid. */
export function readPidFile(path: string): number | undefined {
  try {
    const pid = Number(readFileSync(path, 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

const readPid = (service: ServiceName) => readPidFile(pidFile(service));

export function alive(pid: number | undefined): boolean {
  if (!pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Runs infra/local/provision.sh with its progress on stderr; a failure stops `mesh up` with its advice. */
export function provision(
  step: 'up' | 'down' | 'install' | 'docker' | 'nats-up' | 'nats-down' | 'nats-cluster-up' | 'nats-cluster-down' | 'dockerd-up' | 'dockerd-down',
  ...args: string[]
): void {
  const result = spawnSync('bash', [join(ROOT, 'infra', 'local', 'provision.sh'), step, ...args], {
    stdio: ['ignore', 'inherit', 'inherit'],
    env: { ...process.env, MESH_DATA_DIR: DATA_DIR },
  });
  if (result.status !== 0) throw new CliError(`provisioning (${step}) failed`, 'read the lines above: they name the command to run');
}

/** The node id of this machine's container-manager. */
export const localNodeId = () =>
  (process.env.NODE_ID ??
    hostname()
      .replace(/[^A-Za-z0-9_-]/g, '-')
      .slice(0, 64)) ||
  'local';

/** Node arguments that run one service: compiled when dist/ is fresh (starts in a fraction of the time), else from source. */
export function serviceCommand(service: ServiceName): string[] {
  if (runtime.compiledIsFresh()) return ['-r', join(ROOT, 'bin', 'register-dist.js'), join(runtime.DIST, 'apps', service, 'src', 'main.js')];
  return ['-r', 'ts-node/register/transpile-only', '-r', 'tsconfig-paths/register', join(ROOT, 'apps', service, 'src', 'main.ts')];
}

/** Starts every service that is not running yet as a detached process logging to .data/logs. */
export function startServices(env: Record<string, string> = {}): void {
  mkdirSync(RUN_DIR, { recursive: true });
  mkdirSync(LOG_DIR, { recursive: true });
  for (const service of SERVICES) {
    if (alive(readPid(service))) {
      progress(`  ${service}: already running (pid ${readPid(service)})`);
      continue;
    }
    const out = openSync(logFile(service), 'a');
    const child = spawn(process.execPath, serviceCommand(service), {
      cwd: ROOT,
      detached: true,
      stdio: ['ignore', out, out],
      env: { ...serviceEnv(service), ...env },
    });
    closeSync(out);
    child.unref();
    writeFileSync(pidFile(service), String(child.pid));
    progress(`  ${service}: started (pid ${child.pid}, log ${logFile(service)})`);
  }
}

/** The environment every process of `service` starts with (before `mesh up`'s own options). */
function serviceEnv(service: ServiceName): NodeJS.ProcessEnv {
  return {
    ...process.env,
    NATS_URL: natsUrl(),
    NODE_ID: localNodeId(),
    TS_NODE_PROJECT: join(ROOT, 'tsconfig.json'),
    // The ledger's MAC keys live with the rest of the stack's data (the audit looks there too).
    LEDGER_MAC_KEY_FILE: process.env.LEDGER_MAC_KEY_FILE ?? join(DATA_DIR, 'secrets', 'ledger-mac.key'),
    // The key the ledger's HTTP API checks bearer tokens with (written by `mesh security init`).
    LEDGER_HTTP_TOKEN_KEY_FILE: process.env.LEDGER_HTTP_TOKEN_KEY_FILE ?? ledgerHttpTokenKeyPath(DATA_DIR),
    // Each service its own identity (provision.sh wrote them); none when this data dir has no secrets (a server without auth).
    ...serviceCredsEnv(service),
    ...storageEnv(),
  };
}

export function serviceCredsEnv(service: ServiceName): Record<string, string> {
  const path = serviceCredsPath(DATA_DIR, service);
  return existsSync(path) ? { NATS_CREDS_FILE: path } : {};
}

/** The scheduler's storage guard measures the store provision.sh started: its max_file_store and, when local, its directory. */
function storageEnv(): Record<string, string> {
  const storeDir = join(DATA_DIR, 'nats', 'store');
  return {
    STORAGE_CAPACITY_BYTES: process.env.STORAGE_CAPACITY_BYTES ?? process.env.NATS_MAX_FILE_STORE_BYTES ?? NATS_MAX_FILE_STORE_BYTES_DEFAULT,
    ...(process.env.JETSTREAM_STORE_DIR ? {} : existsSync(storeDir) ? { JETSTREAM_STORE_DIR: storeDir } : {}),
  };
}

const storageAnswerSchema = z.object({ ok: z.literal(true), data: storageStatusSchema });

/** Storage as the scheduler's guard sees it (usage, threshold, whether new work is refused); undefined when the scheduler does not answer. */
export async function storageStatus(timeoutMs = 2000): Promise<StorageStatus | undefined> {
  const nc = await connect({ servers: natsServers(), timeout: 2000, noAsyncTraces: true, reconnect: false, ...cliAuthOptions() }).catch(() => undefined);
  if (!nc) return undefined;
  try {
    const reply = await nc.request(storageRequest.subject, new TextEncoder().encode('{}'), { timeout: timeoutMs }).catch(() => undefined);
    const answer = reply ? storageAnswerSchema.safeParse(JSON.parse(reply.string())) : undefined;
    return answer?.success ? answer.data.data : undefined;
  } finally {
    await nc.close();
  }
}

export async function status(timeoutMs = 1000): Promise<ServiceStatus[]> {
  const nc = await connect({ servers: natsServers(), timeout: 2000, noAsyncTraces: true, reconnect: false, ...cliAuthOptions() }).catch(() => undefined);
  try {
    return await Promise.all(
      SERVICES.map(async (service) => {
        const pid = readPid(service);
        const s: ServiceStatus = { service, pid, running: alive(pid), healthy: false, log: logFile(service) };
        if (!nc) return s;
        const reply = await nc.request(`mesh.api.${service}.health`, new Uint8Array(), { timeout: timeoutMs }).catch(() => undefined);
        const answer = reply ? healthAnswerSchema.safeParse(JSON.parse(reply.string())) : undefined;
        if (answer?.success) {
          s.healthy = answer.data.data.status === 'ok';
          s.uptimeMs = answer.data.data.uptimeMs;
          s.positions = answer.data.data.positions;
        }
        return s;
      }),
    );
  } finally {
    await nc?.close();
  }
}

/** Waits (with progress) until all five answer health; names the one that did not and its log. */
export async function waitHealthy(timeoutMs = HEALTH_TIMEOUT_MS): Promise<ServiceStatus[]> {
  const deadline = Date.now() + timeoutMs;
  const reported = new Set<ServiceName>();
  for (;;) {
    const all = await status();
    for (const s of all) {
      if (s.healthy && !reported.has(s.service)) {
        reported.add(s.service);
        progress(`  ${s.service}: healthy`);
      }
      if (!s.running && !s.healthy) {
        throw new CliError(`${s.service} exited during start-up`, `see its log: ${s.log}\n${tail(s.log)}`);
      }
    }
    if (all.every((s) => s.healthy)) return all;
    if (Date.now() > deadline) {
      const late = all.filter((s) => !s.healthy).map((s) => s.service);
      throw new CliError(`not healthy after ${timeoutMs / 1000} s: ${late.join(', ')}`, `see the logs in ${LOG_DIR}`);
    }
    await sleep(500);
  }
}

function tail(file: string, lines = 15): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

/** SIGTERM each service (they record e.g. NodeLeft), SIGKILL what is left after a grace period. */
export async function stopServices(): Promise<void> {
  const replicas = replicaStatus().map((r) => [r.instance, r.pid] as const);
  const pids = [...SERVICES.map((s) => [s, readPid(s)] as const), ...replicas].filter(([, pid]) => alive(pid));
  for (const [service, pid] of pids) {
    progress(`  ${service}: stopping (pid ${pid})`);
    process.kill(pid!, 'SIGTERM');
  }
  const deadline = Date.now() + STOP_TIMEOUT_MS;
  while (pids.some(([, pid]) => alive(pid)) && Date.now() < deadline) await sleep(100);
  for (const [service, pid] of pids) {
    if (alive(pid)) {
      progress(`  ${service}: did not stop in ${STOP_TIMEOUT_MS / 1000} s, killing`);
      process.kill(pid!, 'SIGKILL');
    }
  }
  for (const service of SERVICES) rmSync(pidFile(service), { force: true });
  for (const r of replicaStatus()) rmSync(r.pidFile, { force: true });
}

// --- `mesh up --replicas N`: more processes of each replicated service (docs/cluster.md "Replicated services") ---

/** apps/ledger/src/config.ts's default LEDGER_HTTP_PORT. */
const LEDGER_HTTP_PORT_DEFAULT = 8480;
/** Processes per replicated service: 2 survives the loss of one; more only adds standbys. */
export const REPLICAS_MAX = 5;
/** Replica `index` >= 1 of `service` (replica 0 is the service's usual process, instance name = the service). */
const replicaInstance = (service: ServiceName, index: number) => `${service}-${index}`;
const replicaPidFile = (instance: string) => join(RUN_DIR, `${instance}.pid`);

export interface ReplicaStatus {
  service: ServiceName;
  instance: string;
  pid?: number;
  running: boolean;
  pidFile: string;
  log: string;
}

/** The extra replicas `mesh up --replicas` started (from their pidfiles). */
export function replicaStatus(): ReplicaStatus[] {
  return LEASED_SERVICES.flatMap((service) =>
    Array.from({ length: REPLICAS_MAX - 1 }, (_, i) => replicaInstance(service, i + 1))
      .filter((instance) => existsSync(replicaPidFile(instance)))
      .map((instance) => {
        const pid = Number(readFileSync(replicaPidFile(instance), 'utf8').trim()) || undefined;
        return { service, instance, pid, running: alive(pid), pidFile: replicaPidFile(instance), log: join(LOG_DIR, `${instance}.log`) };
      }),
  );
}

/**
 * Starts replicas 1..count-1 of each replicated service (the container-manager stays one per node),
 * each with its own instance name (`<service>-<i>`, so its own snapshot keys), pidfile and log.
 */
export function startReplicas(count: number, env: Record<string, string> = {}): void {
  for (const service of LEASED_SERVICES) {
    for (let index = 1; index < count; index++) {
      const instance = replicaInstance(service, index);
      const pidPath = replicaPidFile(instance);
      const running = existsSync(pidPath) ? Number(readFileSync(pidPath, 'utf8').trim()) : undefined;
      if (alive(running)) {
        progress(`  ${instance}: already running (pid ${running})`);
        continue;
      }
      const log = join(LOG_DIR, `${instance}.log`);
      const out = openSync(log, 'a');
      const instanceVar = `${service.toUpperCase().replace(/-/g, '_')}_INSTANCE`;
      // The ledger's HTTP server: one port per replica on this machine (0 stays off).
      const httpPort = Number(env.LEDGER_HTTP_PORT ?? process.env.LEDGER_HTTP_PORT ?? LEDGER_HTTP_PORT_DEFAULT);
      const ports = service === 'ledger' ? { LEDGER_HTTP_PORT: String(httpPort === 0 ? 0 : httpPort + index) } : {};
      const child = spawn(process.execPath, serviceCommand(service), {
        cwd: ROOT,
        detached: true,
        stdio: ['ignore', out, out],
        env: { ...serviceEnv(service), ...env, ...ports, [instanceVar]: instance },
      });
      closeSync(out);
      child.unref();
      writeFileSync(pidPath, String(child.pid));
      progress(`  ${instance}: started (pid ${child.pid}, log ${log})`);
    }
  }
}

/**
 * Whether an event log exists in this data dir (the single server's store or any local cluster
 * server's): the partition count is part of its stored subjects, so it is fixed from then on.
 */
export function logExists(): boolean {
  const stores = [join(DATA_DIR, 'nats', 'store'), ...Array.from({ length: NATS_CLUSTER_SIZE_MAX }, (_, i) => join(clusterDir(i), 'store'))];
  return stores.some((store) => existsSync(join(store, 'jetstream', '$G', 'streams', EVENTS_STREAM)));
}

/** Who leads each replicated service (the holder of its lease in mesh-leases); empty when NATS does not answer. */
export async function leaders(): Promise<Record<string, string>> {
  const nc = await connect({ servers: natsServers(), timeout: 2000, noAsyncTraces: true, reconnect: false, ...cliAuthOptions() }).catch(() => undefined);
  if (!nc) return {};
  try {
    const leases = await readLeases(nc).catch(() => new Map<string, { instance: string; released?: boolean }>());
    return Object.fromEntries([...leases].filter(([, l]) => !l.released).map(([service, l]) => [service, l.instance]));
  } finally {
    await nc.close();
  }
}

// --- `mesh up --nats-cluster N`: N nats-servers on this machine (provision.sh nats-cluster-up, docs/cluster.md) ---

/** Servers of a local cluster: 3 survives the loss of one, 5 of two. */
export const NATS_CLUSTER_SIZE_MAX = 5;
/** Replicas of the event stream and buckets in a cluster: a majority of 3 acknowledges (more only slow appends down). */
const CLUSTER_REPLICAS_MAX = 3;
const clusterDir = (index: number) => join(DATA_DIR, 'nats-cluster', String(index));
const natsPort = () => Number(process.env.NATS_PORT ?? 4222);

/** The servers provision.sh configured (folders .data/nats-cluster/0..N-1); 0 when none. */
export function clusterSize(): number {
  let n = 0;
  while (n < NATS_CLUSTER_SIZE_MAX && existsSync(clusterDir(n))) n++;
  return n;
}

/** Client URLs of a local cluster of `size` (provision.sh: NATS_PORT + i). */
export const clusterUrls = (size: number): string => Array.from({ length: size }, (_, i) => `nats://127.0.0.1:${natsPort() + i}`).join(',');

/** What the services of a cluster of `size` are given: every URL, and the replicas of the stream and buckets. */
export function clusterServiceEnv(size: number): Record<string, string> {
  return {
    NATS_URL: process.env.NATS_URL ?? clusterUrls(size),
    EVENT_REPLICAS: String(Math.min(size, CLUSTER_REPLICAS_MAX)),
    // The scheduler's storage guard measures one server's store (each holds a full replica).
    JETSTREAM_STORE_DIR: process.env.JETSTREAM_STORE_DIR ?? join(clusterDir(0), 'store'),
  };
}

export interface NatsServerStatus {
  name: string;
  url: string;
  pid?: number;
  running: boolean;
}

/** Each server of the local cluster (empty when none is configured), for `mesh status`. */
export function clusterStatus(): NatsServerStatus[] {
  const urls = clusterUrls(clusterSize()).split(',').filter(Boolean);
  return urls.map((url, i) => {
    let pid: number | undefined;
    try {
      pid = Number(readFileSync(join(clusterDir(i), 'nats.pid'), 'utf8').trim()) || undefined;
    } catch {
      pid = undefined;
    }
    return { name: `mesh-${i}`, url, pid, running: alive(pid) };
  });
}
