import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect } from 'nats';
import { z } from 'zod';
import { nodesRequest } from '@mesh/contracts';
import { cliAuthOptions, natsServers, natsUrl } from './connection';
import { CliError, progress } from './output';
import { DATA_DIR, LOG_DIR, ROOT, alive, provision, readPidFile, serviceCommand, serviceCredsEnv } from './stack';

/**
 * `mesh up --nodes N` (docs/cluster.md, "Worker nodes"): node 1 is the stack's container-manager on
 * the machine's Docker engine; nodes 2..N are further container-manager processes, each with its own
 * NODE_ID and its own Docker engine (`provision.sh dockerd-up <i>`: no bridge, so NODE_NETWORK=false).
 */

/** Nodes of a local stack (provision.sh's NODES_MAX). */
export const NODES_MAX = 8;
/** How long `mesh up` waits for every node to be seen alive by the scheduler. */
const NODES_READY_TIMEOUT_MS = 120_000;
const NODE_STOP_TIMEOUT_MS = 15_000;
const RUN_DIR = join(DATA_DIR, 'run');

export const nodeIdOf = (index: number) => `node-${index}`;
/** Node i's engine socket (provision.sh node_socket). */
export const nodeSocket = (index: number) => join(DATA_DIR, 'nodes', String(index), 'docker.sock');
const nodePidFile = (index: number) => join(RUN_DIR, `container-manager-${index}.pid`);
export const nodeLogFile = (index: number) => join(LOG_DIR, `container-manager-${index}.log`);

/** What node 1 (the stack's own container-manager) is given when there are several nodes. */
export const firstNodeEnv = (count: number): Record<string, string> => (count > 1 ? { NODE_ID: nodeIdOf(1) } : {});

/** Starts nodes 2..count: each its engine (provision.sh dockerd-up i), then its container-manager. */
export function startExtraNodes(count: number, env: Record<string, string>): void {
  mkdirSync(RUN_DIR, { recursive: true });
  mkdirSync(LOG_DIR, { recursive: true });
  for (let i = 2; i <= count; i++) {
    provision('dockerd-up', String(i));
    const pidFile = nodePidFile(i);
    if (alive(readPidFile(pidFile))) {
      progress(`  ${nodeIdOf(i)}: already running (pid ${readPidFile(pidFile)})`);
      continue;
    }
    const out = openSync(nodeLogFile(i), 'a');
    const child = spawn(process.execPath, serviceCommand('container-manager'), {
      cwd: ROOT,
      detached: true,
      stdio: ['ignore', out, out],
      env: {
        ...process.env,
        NATS_URL: natsUrl(),
        TS_NODE_PROJECT: join(ROOT, 'tsconfig.json'),
        ...serviceCredsEnv('container-manager'),
        ...env,
        NODE_ID: nodeIdOf(i),
        CONTAINER_MANAGER_INSTANCE: `container-manager-${i}`,
        DOCKER_SOCKET: nodeSocket(i),
        // Its engine has no bridge: network-enabled functions go to node 1 (docs/cluster.md).
        NODE_NETWORK: 'false',
      },
    });
    closeSync(out);
    child.unref();
    writeFileSync(pidFile, String(child.pid));
    progress(`  ${nodeIdOf(i)}: started (pid ${child.pid}, engine ${nodeSocket(i)}, log ${nodeLogFile(i)})`);
  }
}

const nodesAnswerSchema = z.object({ ok: z.literal(true), data: nodesRequest.reply });

/** Waits until the scheduler lists every node of `ids` alive (each has registered and beats). */
export async function waitNodes(ids: string[], timeoutMs = NODES_READY_TIMEOUT_MS): Promise<void> {
  const nc = await connect({ servers: natsServers(), timeout: 3000, noAsyncTraces: true, ...cliAuthOptions() });
  try {
    const deadline = Date.now() + timeoutMs;
    const seen = new Set<string>();
    for (;;) {
      const reply = await nc.request(nodesRequest.subject, new TextEncoder().encode('{}'), { timeout: 2000 }).catch(() => undefined);
      const answer = reply ? nodesAnswerSchema.safeParse(JSON.parse(reply.string())) : undefined;
      for (const n of answer?.success ? answer.data.data.nodes : []) {
        if (ids.includes(n.nodeId) && n.state === 'ready' && !seen.has(n.nodeId)) {
          seen.add(n.nodeId);
          progress(`  ${n.nodeId}: ready`);
        }
      }
      if (ids.every((id) => seen.has(id))) return;
      if (Date.now() > deadline) {
        const late = ids.filter((id) => !seen.has(id));
        throw new CliError(`nodes not ready after ${timeoutMs / 1000} s: ${late.join(', ')}`, `see the logs in ${LOG_DIR} (container-manager-<i>.log)`);
      }
      await sleep(500);
    }
  } finally {
    await nc.close();
  }
}

export interface NodeProcessStatus {
  node: string;
  pid?: number;
  running: boolean;
  engine: string;
  engineRunning: boolean;
}

/** Node indexes 2..NODES_MAX that have a pid file or an engine folder. */
function extraNodeIndexes(): number[] {
  const found = new Set<number>();
  const scan = (dir: string, pattern: RegExp) => {
    if (!existsSync(dir)) return;
    for (const name of readdirSync(dir)) {
      const m = pattern.exec(name);
      const i = m ? Number(m[1]) : NaN;
      if (i >= 2 && i <= NODES_MAX) found.add(i);
    }
  };
  scan(RUN_DIR, /^container-manager-(\d+)\.pid$/);
  scan(join(DATA_DIR, 'nodes'), /^(\d+)$/);
  return [...found].sort((a, b) => a - b);
}

/** Nodes 2..N of the local stack: their container-manager and engine (empty with one node). */
export function nodeProcessStatus(): NodeProcessStatus[] {
  return extraNodeIndexes().map((i) => {
    const pid = readPidFile(nodePidFile(i));
    const enginePid = readPidFile(join(DATA_DIR, 'nodes', String(i), 'dockerd.pid'));
    return { node: nodeIdOf(i), pid, running: alive(pid), engine: nodeSocket(i), engineRunning: alive(enginePid) };
  });
}

/** SIGTERM nodes 2..N (each records NodeLeft), SIGKILL what is left after a grace period, then stop their engines. */
export async function stopExtraNodes(): Promise<void> {
  const indexes = extraNodeIndexes();
  const running = indexes.map((i) => [i, readPidFile(nodePidFile(i))] as const).filter(([, pid]) => alive(pid));
  for (const [i, pid] of running) {
    progress(`  ${nodeIdOf(i)}: stopping (pid ${pid})`);
    process.kill(pid!, 'SIGTERM');
  }
  const deadline = Date.now() + NODE_STOP_TIMEOUT_MS;
  while (running.some(([, pid]) => alive(pid)) && Date.now() < deadline) await sleep(100);
  for (const [i, pid] of running) {
    if (alive(pid)) {
      progress(`  ${nodeIdOf(i)}: did not stop in ${NODE_STOP_TIMEOUT_MS / 1000} s, killing`);
      process.kill(pid!, 'SIGKILL');
    }
  }
  for (const i of indexes) {
    rmSync(nodePidFile(i), { force: true });
    if (existsSync(join(DATA_DIR, 'nodes', String(i)))) provision('dockerd-down', String(i));
  }
}

export function nodesOption(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > NODES_MAX) {
    throw new CliError(`--nodes: must be an integer in 1..${NODES_MAX}, got '${value}'`, 'e.g. `mesh up --nodes 2`');
  }
  return n;
}
