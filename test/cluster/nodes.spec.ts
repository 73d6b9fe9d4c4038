import { execFileSync, execSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ContainerStarted,
  ContainerStopped,
  drainNodeRequest,
  ExecutionStarted,
  ExecutionSucceeded,
  isEvent,
  NodeDrainRequested,
  NodeLeft,
  nodesRequest,
  ResourceSampled,
  submitTaskRequest,
  TaskDispatched,
  TaskFailed,
  TaskRequeued,
  TaskRunning,
  TaskSucceeded,
  type RecordedEvent,
} from '@mesh/contracts';
import { verifyAudit } from '@mesh/audit';
import { readAllPaged, type PoisonMessage } from '@mesh/eventstore';
import { eventually } from '@mesh/testing';
import { runMesh } from '@mesh/testing/mesh-cli';
import { checkEvents, type CheckResult } from '../chaos/checks';
import { expectedExit, send, Workload, type PlannedTask, type WalletPlan } from '../chaos/workload';
import { E2EStack } from '../e2e/stack';

/**
 * Issue 14, worker nodes (docs/cluster.md, "Worker nodes"): two nodes, node 2 on its own dockerd
 * started by `provision.sh dockerd-up 2` (no bridge, the base image loaded with docker save | load).
 * Tasks spread over both; node 2 is drained (running tasks end there, then it leaves); node 2, back,
 * is SIGKILLed with its engine stopped mid-run: its tasks are requeued and end on node 1; node 2 comes
 * back and reconciles. The books from the raw log pass every check of test/chaos/checks.ts and the audit.
 */
const SPEED = Number(process.env.E2E_SPEED ?? 20);
const PROVISION = join(__dirname, '..', '..', 'infra', 'local', 'provision.sh');
/** Two 1-core tasks at once per node: the third and fourth go to the other node. */
const NODE_ENV = { NODE_CPU_MILLIS: '2000', NODE_MEMORY_BYTES: String(1024 ** 3) };
const WALLETS = 4;
const TASKS_TIMEOUT_MS = 300_000;

describe('worker nodes: spread, drain, node loss (node 2 on its own dockerd)', () => {
  const stack = new E2EStack(SPEED, true);
  stack.nodeEnv = NODE_ENV;
  // Short: the engine's unix socket lives under it (108 bytes at most).
  const dataDir = mkdtempSync(join(tmpdir(), 'mn-'));
  const node1 = stack.nodeId;
  const node2 = `${stack.nodeId}-2`.slice(0, 64);
  const socket = join(dataDir, 'nodes', '2', 'docker.sock');
  const runId = `nodes${process.pid}`;
  const wallets: WalletPlan[] = Array.from({ length: WALLETS }, (_, i) => ({ walletId: `${runId}-w${i}`, role: 'funded', deposit: '1000', maxDebt: '1' }));
  let workload: Workload;
  const walletIds = new Set(wallets.map((w) => w.walletId));
  const log = (line: string) => process.stdout.write(`[nodes] ${line}\n`);

  const provision = (...args: string[]) =>
    execFileSync('bash', [PROVISION, ...args], { env: { ...process.env, MESH_DATA_DIR: dataDir }, stdio: ['ignore', 'pipe', 'inherit'] });
  const node2Env = { DOCKER_SOCKET: socket, NODE_NETWORK: 'false', ...NODE_ENV };

  beforeAll(async () => {
    execSync('docker info', { stdio: 'ignore' }); // a clear failure when no engine answers
    provision('dockerd-up', '2');
    await stack.start();
    await stack.startNode(node2, node2Env);
    workload = new Workload(stack.client, runId, wallets, [], log);
    await workload.prepare();
  }, 300_000);

  afterAll(async () => {
    await stack.stop();
    try {
      provision('dockerd-down', '2', '--purge');
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  }, 120_000);

  async function readLog(): Promise<{ events: RecordedEvent[]; poison: PoisonMessage[] }> {
    const events: RecordedEvent[] = [];
    const poison: PoisonMessage[] = [];
    for await (const e of readAllPaged(stack.store, 1n, 1000, { quarantine: 'report', onPoison: (p) => poison.push(p) })) events.push(e);
    return { events, poison };
  }

  /** `count` tasks of `seconds` each, round-robin over the wallets, all exiting 0. */
  async function submit(phase: string, count: number, seconds: number): Promise<PlannedTask[]> {
    const tasks = Array.from({ length: count }, (_, i) => ({
      taskId: `${runId}-${phase}-${i}`,
      walletId: wallets[i % WALLETS].walletId,
      exitCode: 0,
      seconds,
      atMs: 0,
    }));
    for (const t of tasks) {
      const input = { inline: Buffer.from(`${t.exitCode}-${t.seconds}`).toString('base64') };
      await send(stack.client, submitTaskRequest, { functionId: workload.functionId, walletId: t.walletId, taskId: t.taskId, input });
    }
    return tasks;
  }

  /** Waits until every task has a terminal event; returns the log then. */
  async function allEnded(tasks: PlannedTask[], what: string): Promise<RecordedEvent[]> {
    const ids = new Set(tasks.map((t) => t.taskId));
    return eventually(
      async () => {
        const { events } = await readLog();
        const ended = events.filter((e) => (isEvent(e, TaskSucceeded) || isEvent(e, TaskFailed)) && ids.has(e.data.taskId));
        return ended.length >= ids.size ? events : undefined;
      },
      TASKS_TIMEOUT_MS,
      what,
    );
  }

  const dispatchesOf = (events: RecordedEvent[], tasks: PlannedTask[]) => {
    const ids = new Set(tasks.map((t) => t.taskId));
    return events
      .filter((e) => isEvent(e, TaskDispatched) && ids.has(e.data.taskId))
      .map((e) => e as RecordedEvent & { data: { nodeId: string; taskId: string } });
  };

  it('spreads tasks over both nodes by capacity and load', async () => {
    const tasks = await submit('spread', 8, 3);
    const events = await allEnded(tasks, 'the spread tasks ended');
    const nodes = new Set(dispatchesOf(events, tasks).map((e) => e.data.nodeId));
    expect([...nodes].sort()).toEqual([node1, node2].sort());
    const ids = new Set(tasks.map((t) => t.taskId));
    expect(events.filter((e) => isEvent(e, TaskSucceeded) && ids.has(e.data.taskId))).toHaveLength(8);

    const list = await runMesh(['node', 'list', '--json'], {
      ...process.env,
      NATS_URL: stack.env.NATS_URL,
      MESH_CREDS: stack.server.credsPath({ kind: 'operator' }),
      MESH_FROM_SOURCE: '1',
    });
    expect(list.code).toBe(0);
    const listed = (JSON.parse(list.out) as { nodes: { nodeId: string; state: string; network: boolean; cpuMillis: number }[] }).nodes;
    expect(listed.find((n) => n.nodeId === node1)).toMatchObject({ state: 'ready', network: true, cpuMillis: 2000 });
    expect(listed.find((n) => n.nodeId === node2)).toMatchObject({ state: 'ready', network: false, cpuMillis: 2000 });
  }, 400_000);

  it('drain: no new task on node 2, its running tasks end there, then it leaves (NodeLeft drained)', async () => {
    const tasks = await submit('drain', 8, 8);
    const ids = new Set(tasks.map((t) => t.taskId));
    // Once node 2 runs one of them.
    await eventually(
      async () => (await readLog()).events.some((e) => isEvent(e, TaskRunning) && ids.has(e.data.taskId) && e.data.nodeId === node2) || undefined,
      TASKS_TIMEOUT_MS,
      'a drain task running on node 2',
    );
    const drained = await runMesh(['node', 'drain', node2, '--json'], {
      ...process.env,
      NATS_URL: stack.env.NATS_URL,
      MESH_CREDS: stack.server.credsPath({ kind: 'operator' }),
      MESH_FROM_SOURCE: '1',
    });
    expect(drained.code).toBe(0);
    expect(JSON.parse(drained.out)).toMatchObject({ nodeId: node2, state: 'draining' });
    // Idempotent: asked again, same answer, no second event.
    await expect(stack.client.request(drainNodeRequest, { nodeId: node2 })).resolves.toMatchObject({ nodeId: node2, state: 'draining' });

    const events = await allEnded(tasks, 'the drain tasks ended');
    const left = await eventually(
      async () => (await readLog()).events.find((e) => isEvent(e, NodeLeft) && e.data.nodeId === node2 && e.data.reason === 'drained'),
      120_000,
      'node 2 left (drained)',
    );
    const all = (await readLog()).events;
    expect(all.filter((e) => isEvent(e, NodeDrainRequested) && e.data.nodeId === node2)).toHaveLength(1);
    // Every execution node 2 started ended there (succeeded) before it left; nothing was placed there after.
    const startedOn2 = all.flatMap((e) => (isEvent(e, ExecutionStarted) && e.data.nodeId === node2 && ids.has(e.data.taskId) ? [e] : []));
    expect(startedOn2.length).toBeGreaterThan(0);
    for (const s of startedOn2) {
      const { executionId } = s.data;
      const end = all.find((e) => isEvent(e, ExecutionSucceeded) && e.data.executionId === executionId);
      expect(end?.position).toBeLessThan(left.position);
    }
    expect(all.filter((e) => isEvent(e, TaskDispatched) && e.data.nodeId === node2 && e.position > left.position)).toEqual([]);
    expect(events.filter((e) => isEvent(e, TaskRequeued) && ids.has(e.data.taskId))).toEqual([]);
    const { nodes } = await stack.client.request(nodesRequest, {});
    expect(nodes.find((n) => n.nodeId === node2)).toMatchObject({ state: 'left', draining: false });

    // Back: a clean restart registers it afresh (ready).
    await stack.extraNodes.get(node2)!.process.stop('SIGTERM');
    await stack.startNode(node2);
  }, 500_000);

  it('node loss: SIGKILL node 2 and stop its engine mid-run: its tasks end on node 1, billed once; back, it reconciles', async () => {
    const tasks = await submit('loss', 8, 10);
    const ids = new Set(tasks.map((t) => t.taskId));
    // Once node 2 runs one of them and has recorded usage for it.
    await eventually(
      async () => {
        const { events } = await readLog();
        const containers = new Set(events.flatMap((e) => (isEvent(e, ContainerStarted) && e.data.nodeId === node2 ? [e.data.containerId] : [])));
        const running = events.some((e) => isEvent(e, TaskRunning) && ids.has(e.data.taskId) && e.data.nodeId === node2);
        return (running && events.some((e) => isEvent(e, ResourceSampled) && containers.has(e.data.containerId))) || undefined;
      },
      TASKS_TIMEOUT_MS,
      'a loss task running on node 2 with usage recorded',
    );
    const killedAtMs = Date.now();
    await stack.extraNodes.get(node2)!.process.stop('SIGKILL');
    provision('dockerd-down', '2'); // dockerd stops its containers; they stay for the reconcile
    log(`node 2 killed and its engine stopped at ${new Date(killedAtMs).toISOString()}`);

    const events = await allEnded(tasks, 'the loss tasks ended');
    const requeued = events.flatMap((e) => (isEvent(e, TaskRequeued) && ids.has(e.data.taskId) && e.data.reason === 'node-lost' ? [e] : []));
    expect(requeued.length).toBeGreaterThan(0);
    const succeeded = events.filter((e) => isEvent(e, TaskSucceeded) && ids.has(e.data.taskId));
    expect(succeeded).toHaveLength(8);
    // Each requeued task ended on node 1.
    for (const r of requeued) {
      const { taskId } = r.data;
      const last = dispatchesOf(events, tasks).filter((d) => d.data.taskId === taskId && d.position > r.position);
      expect(last.map((d) => d.data.nodeId)).toEqual([node1]);
    }
    const requeueMs = requeued.map((r) => Date.parse(r.occurredAt) - killedAtMs);
    const redispatchMs = requeued.map((r) => {
      const d = dispatchesOf(events, tasks).find((x) => x.data.taskId === r.data.taskId && x.position > r.position)!;
      return Date.parse(d.occurredAt) - killedAtMs;
    });
    log(
      `node loss: ${requeued.length} task(s) requeued ${requeueMs.join(', ')} ms after the kill, dispatched again on node 1 after ${redispatchMs.join(', ')} ms`,
    );

    // Back: its engine and agent start again; the reconcile stops (and records) the containers it left.
    provision('dockerd-up', '2');
    await stack.startNode(node2);
    let failing: CheckResult[] = [];
    await eventually(
      async () => {
        const log = await readLog();
        const started = log.events.filter((e) => isEvent(e, ContainerStarted)).length;
        const stopped = log.events.filter((e) => isEvent(e, ContainerStopped)).length;
        if (started !== stopped) return undefined;
        failing = checkEvents(log.events, log.poison, walletIds, expectedExit).filter((c) => !c.pass);
        return failing.length === 0;
      },
      180_000,
      'the books from the raw log pass every check',
    ).catch(() => undefined); // the failing checks themselves are the assertion's message
    expect(failing).toEqual([]);
    expect((await verifyAudit(stack.store)).pass).toBe(true);
    expect(await stack.client.requestRaw('mesh.query.ledger.audit', {}, 120_000)).toMatchObject({ pass: true });
  }, 600_000);
});
