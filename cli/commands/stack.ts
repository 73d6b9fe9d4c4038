import { setTimeout as sleep } from 'node:timers/promises';
import type { Command } from 'commander';
import { emit, progress, table } from '../output';
import type { StorageStatus } from '@mesh/contracts';
import { CliError } from '../output';
import { PARTITIONS_MAX } from '@mesh/contracts';
import { messageOf } from '@mesh/common';
import { partitionsPath, setStackPartitions } from '@mesh/identity';
import {
  clusterServiceEnv,
  clusterStatus,
  DATA_DIR,
  logExists,
  LOG_DIR,
  NATS_CLUSTER_SIZE_MAX,
  REPLICAS_MAX,
  leaders,
  provision,
  replicaStatus,
  startReplicas,
  startServices,
  status,
  stopServices,
  storageStatus,
  waitHealthy,
  type NatsServerStatus,
  type ReplicaStatus,
} from '../stack';
import {
  NODES_MAX,
  firstNodeEnv,
  nodeIdOf,
  nodeProcessStatus,
  nodesOption,
  startExtraNodes,
  stopExtraNodes,
  waitNodes,
  type NodeProcessStatus,
} from '../nodes';

const fmtUptime = (ms?: number) => (ms === undefined ? '' : ms < 60_000 ? `${Math.round(ms / 1000)}s` : `${Math.round(ms / 60_000)}m`);

export function printStatus(all: Awaited<ReturnType<typeof status>>) {
  table(
    all.map((s) => ({
      service: s.service,
      pid: s.pid ?? '',
      process: s.running ? 'running' : 'stopped',
      health: s.healthy ? 'ok' : '-',
      uptime: fmtUptime(s.uptimeMs),
      log: s.log,
    })),
  );
}

const fmtBytes = (n: number) => (n >= 1024 ** 3 ? `${(n / 1024 ** 3).toFixed(2)} GiB` : n >= 1024 ** 2 ? `${(n / 1024 ** 2).toFixed(1)} MiB` : `${n} B`);

/** One line on the event store's usage and whether the scheduler refuses new work (storage_full). */
export function storageLine(s: StorageStatus | undefined): string {
  if (!s) return 'storage: unknown (the scheduler does not answer)';
  const store =
    s.capacityBytes === null
      ? `${fmtBytes(s.usedBytes)} used (capacity unknown: set STORAGE_CAPACITY_BYTES)`
      : `${fmtBytes(s.usedBytes)} of ${fmtBytes(s.capacityBytes)} (${s.usedPct}%, ${s.capacitySource})`;
  const fs = s.filesystem ? `, filesystem ${s.filesystem.usedPct}% full (${fmtBytes(s.filesystem.availableBytes)} free)` : '';
  const verdict = s.refusing ? `NEW WORK REFUSED (storage_full): ${s.reason ?? ''}` : `new work accepted (refused above ${s.refuseAbovePct}%)`;
  return `storage: ${store}${fs}; ${verdict}`;
}

export function registerStack(program: Command) {
  program
    .command('up')
    .description('start the local stack: provision (nats-server, Docker, base image), then the five services as processes')
    .option('-d, --detach', 'return once every service is healthy, leaving the stack running')
    .option(
      '--nats-cluster <n>',
      `run NATS as n servers on this machine, routed as one cluster (1..${NATS_CLUSTER_SIZE_MAX}; 3 survives the loss of one), the event stream and buckets replicated (docs/cluster.md)`,
    )
    .option(
      '--nodes <n>',
      `run n worker nodes (1..${NODES_MAX}, default 1): node-1 on the machine's Docker engine, node-2.. each a container-manager with its own Docker engine (docs/cluster.md, "Worker nodes")`,
    )
    .option(
      '--replicas <n>',
      `run every service but the container-manager as n processes (1..${REPLICAS_MAX}): one leads through a lease, the others stand by and take over (docs/cluster.md)`,
    )
    .option(
      '--partitions <n>',
      `partition the log's event subjects n ways (2..${PARTITIONS_MAX}; fixed when the log is created): the replicas of the ledger, the credit-manager and the scaler then share the per-container work, each partition run by one of them (docs/cluster.md, "Partitions")`,
    )
    .addHelpText('after', '\nLogs go to .data/logs/<service>.log; stop with `mesh down`.')
    .action(async (opts: { detach?: boolean; natsCluster?: string; nodes?: string; replicas?: string; partitions?: string }) => {
      const replicas = opts.replicas === undefined ? 1 : replicasOption(opts.replicas);
      // Before provisioning: it writes the server's config (auth.conf with the mapping) from this.
      if (opts.partitions !== undefined) setPartitions(partitionsOption(opts.partitions));
      const size = opts.natsCluster === undefined ? undefined : clusterSizeOption(opts.natsCluster);
      const nodes = opts.nodes === undefined ? 1 : nodesOption(opts.nodes);
      if (size === undefined) {
        progress('provisioning (infra/local/provision.sh up)');
        provision('up');
      } else {
        progress(`provisioning (infra/local/provision.sh install, docker, nats-cluster-up ${size})`);
        provision('install');
        provision('docker');
        provision('nats-cluster-up', String(size));
      }
      progress('starting services');
      const env = size === undefined ? {} : clusterServiceEnv(size);
      // How many replicas run: partition p is at home on replica p mod this (docs/cluster.md "Partitions").
      env.SERVICE_REPLICAS = String(replicas);
      startServices({ ...env, ...firstNodeEnv(nodes) });
      if (replicas > 1) startReplicas(replicas, env);
      if (nodes > 1) {
        progress(`starting worker nodes 2..${nodes} (each its own dockerd: infra/local/provision.sh dockerd-up <i>)`);
        startExtraNodes(nodes, env);
      }
      const all = await waitHealthy();
      if (nodes > 1) await waitNodes(Array.from({ length: nodes }, (_, i) => nodeIdOf(i + 1)));
      emit({ services: all }, () => {
        printStatus(all);
        console.log(opts.detach ? '\nstack is up. `mesh status` shows it, `mesh down` stops it.' : '\nstack is up. Ctrl-C stops it.');
      });
      if (opts.detach) return;
      await watch();
    });

  program
    .command('down')
    .description('stop the five services, the worker nodes and their engines, and the local nats-server (data is kept in .data/)')
    .action(async () => {
      await stopExtraNodes();
      await stopServices();
      provision('nats-down');
      provision('nats-cluster-down');
      emit({ stopped: true }, () => console.log('stack stopped'));
    });

  program
    .command('status')
    .description('show each service (process, health, uptime, log file) and the storage: usage and whether new work is refused')
    .action(async () => {
      const [all, storage] = await Promise.all([status(), storageStatus()]);
      const servers = clusterStatus();
      const nodes = nodeProcessStatus();
      const [replicas, leading] = [replicaStatus(), await leaders()];
      emit(
        {
          services: all,
          storage: storage ?? null,
          ...(servers.length ? { natsCluster: servers } : {}),
          ...(nodes.length ? { nodes } : {}),
          leaders: leading,
          replicas,
        },
        () => {
          printStatus(all);
          console.log(`\n${storageLine(storage)}`);
          if (servers.length) printCluster(servers);
          if (nodes.length) printNodes(nodes);
          if (Object.keys(leading).length > 0 || replicas.length > 0) printReplicas(replicas, leading);
        },
      );
      if (!all.every((s) => s.healthy) || !nodes.every((n) => n.running && n.engineRunning)) process.exitCode = 1;
    });
}

/** Foreground `mesh up`: report health changes until Ctrl-C, then stop the stack. */
async function watch(): Promise<void> {
  let last = '';
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    progress('\nstopping the stack');
    await stopExtraNodes();
    await stopServices();
    provision('nats-down');
    provision('nats-cluster-down');
    process.exit(0);
  };
  process.on('SIGINT', () => void stop());
  process.on('SIGTERM', () => void stop());
  for (;;) {
    const all = await status();
    const line = all.map((s) => `${s.service}:${s.healthy ? 'ok' : s.running ? 'starting' : 'DOWN'}`).join('  ');
    if (line !== last) {
      console.log(`${new Date().toISOString().slice(11, 19)}  ${line}`);
      if (all.some((s) => !s.running)) console.log(`  (a service stopped: see ${LOG_DIR})`);
      last = line;
    }
    await sleep(2000);
  }
}

function clusterSizeOption(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > NATS_CLUSTER_SIZE_MAX) {
    throw new CliError(`--nats-cluster: must be an integer in 1..${NATS_CLUSTER_SIZE_MAX}, got '${value}'`, 'e.g. `mesh up --nats-cluster 3`');
  }
  return n;
}

function partitionsOption(value: string): number {
  const n = /^\d+$/.test(value) ? Number(value) : Number.NaN;
  if (!(n >= 1 && n <= PARTITIONS_MAX)) {
    throw new CliError(`--partitions: must be an integer in 1..${PARTITIONS_MAX}, got '${value}'`, 'e.g. `mesh up --replicas 2 --partitions 4`');
  }
  return n;
}

/** Sets the stack's partition count, refused (with the reason) once a log exists with another one. */
function setPartitions(partitions: number): void {
  try {
    setStackPartitions(DATA_DIR, partitions, logExists());
  } catch (err) {
    throw new CliError(messageOf(err), `the current count is in ${partitionsPath(DATA_DIR)}`);
  }
  progress(`event log: ${partitions} partition(s) (${partitionsPath(DATA_DIR)})`);
}

function replicasOption(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > REPLICAS_MAX) {
    throw new CliError(`--replicas: must be an integer in 1..${REPLICAS_MAX}, got '${value}'`, 'e.g. `mesh up --replicas 2`');
  }
  return n;
}

/** Each replicated service's processes (replica 0 is the service's own line above) and which one leads. */
function printReplicas(replicas: ReplicaStatus[], leading: Record<string, string>) {
  console.log('\nreplicas (leader: holder of the lease in mesh-leases):');
  const services = Object.keys(leading).filter((key) => !key.includes('.'));
  const first = services.map((service) => ({ service, instance: service, pid: '', process: '' }));
  const rows = [
    ...first,
    ...replicas.map((r) => ({ service: r.service, instance: r.instance, pid: String(r.pid ?? ''), process: r.running ? 'running' : 'stopped' })),
  ];
  // A partitioned log: the partitions each replica holds (keys `<service>.p<i>`, docs/cluster.md "Partitions").
  const partitionsOf = (service: string, instance: string) =>
    Object.entries(leading)
      .filter(([key, holder]) => key.startsWith(`${service}.p`) && holder === instance)
      .map(([key]) => key.slice(service.length + 1))
      .join(' ');
  table(
    rows
      .sort((a, b) => a.service.localeCompare(b.service))
      .map((r) => ({ ...r, leader: leading[r.service] === r.instance ? 'yes' : '', partitions: partitionsOf(r.service, r.instance) })),
  );
}

function printCluster(servers: NatsServerStatus[]) {
  console.log('\nnats cluster:');
  table(servers.map((s) => ({ server: s.name, url: s.url, pid: s.pid ?? '', process: s.running ? 'running' : 'stopped' })));
}

function printNodes(nodes: NodeProcessStatus[]) {
  console.log('\nworker nodes (node-1 is the container-manager above; `mesh node list` shows what the scheduler sees):');
  table(
    nodes.map((n) => ({
      node: n.node,
      pid: n.pid ?? '',
      process: n.running ? 'running' : 'stopped',
      engine: n.engineRunning ? 'running' : 'stopped',
      socket: n.engine,
    })),
  );
}
