import { setTimeout as sleep } from 'node:timers/promises';
import type { Command } from 'commander';
import { drainNodeRequest, nodesRequest, type ReplyData } from '@mesh/contracts';
import type { MeshClient } from '@mesh/runtime';
import { call, withClient } from '../connection';
import { CliError, UsageError, emit, progress, table } from '../output';

/** Longest `mesh node drain --wait` (the drain goes on after it). */
const DRAIN_WAIT_MAX_MS = 24 * 3600_000;
const DRAIN_POLL_MS = 1000;

type NodeRow = ReplyData<typeof nodesRequest>['nodes'][number];

const fmtMillis = (m: number) => `${(m / 1000).toFixed(m % 1000 === 0 ? 0 : 2)} cores`;
const fmtBytes = (n: number) => (n >= 1024 ** 3 ? `${(n / 1024 ** 3).toFixed(1)} GiB` : `${Math.round(n / 1024 ** 2)} MiB`);
const fmtAgo = (atMs: number | null, nowMs: number) => (atMs === null ? 'never' : `${Math.max(0, Math.round((nowMs - atMs) / 1000))} s ago`);

async function nodes(client: MeshClient) {
  return call(client, nodesRequest, {});
}

/** `mesh node list` and `mesh node drain` (docs/cluster.md, "Worker nodes"). Operator only: NATS refuses a tenant, the services check again. */
export function registerNode(program: Command) {
  const node = program.command('node').description('worker nodes: list them with capacity, containers, last heartbeat and state; drain one (operator only)');

  node
    .command('list')
    .description('every registered node as the scheduler sees it: capacity, reserved, containers, tasks, last heartbeat, state (ready, draining, left, lost)')
    .action(() =>
      withClient(async (client) => {
        const { data, json } = await nodes(client);
        const nowMs = Date.now();
        emit(json, () =>
          table(
            data.nodes.map((n) => ({
              node: n.nodeId,
              state: n.state,
              cpu: fmtMillis(n.cpuMillis),
              memory: fmtBytes(n.memoryBytes),
              reserved: `${fmtMillis(n.reservedCpuMillis)}, ${fmtBytes(n.reservedMemoryBytes)}`,
              containers: n.runningContainers ?? '-',
              tasks: n.tasks,
              heartbeat: fmtAgo(n.lastHeartbeatAtMs, nowMs),
              network: n.network ? 'yes' : 'no',
              reliability: n.reliability.toFixed(2),
            })),
          ),
        );
      }),
    );

  node
    .command('drain <nodeId>')
    .description('stop placing tasks on a node, let its running tasks end, then it leaves (NodeLeft, reason drained)')
    .option('--wait', 'return once the node has left (its running tasks ended)')
    .action((nodeId: string, opts: { wait?: boolean }) =>
      withClient(async (client) => {
        const { data, json } = await call(client, drainNodeRequest, { nodeId });
        if (!opts.wait) {
          emit(json, () => console.log(`${data.nodeId}: draining (no new tasks; it leaves once its running tasks end). \`mesh node list\` shows its state.`));
          return;
        }
        progress(`${data.nodeId}: draining; waiting until it leaves`);
        const last = await waitLeft(client, data.nodeId);
        emit({ nodeId: data.nodeId, state: last.state, requestedAtMs: data.requestedAtMs }, () => console.log(`${data.nodeId}: ${last.state}`));
      }),
    );
}

async function waitLeft(client: MeshClient, nodeId: string): Promise<NodeRow> {
  const deadline = Date.now() + DRAIN_WAIT_MAX_MS;
  let tasks = -1;
  for (;;) {
    const row = (await nodes(client)).data.nodes.find((n) => n.nodeId === nodeId);
    if (!row) throw new UsageError(`node ${nodeId}: the scheduler does not list it`);
    if (row.state === 'left') return row;
    if (row.state === 'lost') throw new CliError(`node ${nodeId} is lost (no heartbeat): its tasks were requeued; it leaves once it is back and idle`);
    if (row.tasks !== tasks) progress(`  ${row.tasks} task(s) still on ${nodeId}`);
    tasks = row.tasks;
    if (Date.now() > deadline) throw new CliError(`node ${nodeId} still draining after ${DRAIN_WAIT_MAX_MS / 3600_000} h`);
    await sleep(DRAIN_POLL_MS);
  }
}
