/**
 * Scheduler benchmarks.
 *  1. Placement throughput (pure, in-process): 100 registered nodes, 10,000 pending tasks of 100
 *     wallets x 10 functions; the fair pool + placement + folding of each dispatch, until the pool
 *     is empty. Goal >= 1,000 placements/s. Raw baseline: the placement function alone on the same
 *     100 nodes (no pool, no view).
 *  2. Submit-to-dispatch latency at light load on a real nats-server: one task at a time, from the
 *     submit request to the TaskDispatched event arriving on a subscription (the node is faked with
 *     NodeRegistered in the store and heartbeats on core NATS). Raw baseline from the same run: one
 *     event appended to the store and received on a subscription (one JetStream round trip).
 */
import type { NatsConnection } from 'nats';
import {
  FUNCTION_DEFAULTS,
  NodeRegistered,
  StandingChanged,
  TaskDispatched,
  WalletOpened,
  eventOf,
  heartbeatSubject,
  isEvent,
  type RecordedEvent,
} from '@mesh/contracts';
import { JetStreamEventStore } from '@mesh/eventstore';
import { MeshClient, encodeJson, startService } from '@mesh/runtime';
import { NatsServerProcess } from '@mesh/testing';
import { SchedulerService } from '../apps/scheduler/src/main';
import { fnSpec, folded, functionDeployed, nodeRegistered, standingChanged, taskSubmitted, walletOpened } from '../apps/scheduler/test/fixtures';
import { containerKey, place, type PlacementNode } from '../apps/scheduler/src/domain/placement';
import { SchedulerView, dispatchInMemory } from '../apps/scheduler/src/domain/scheduler-view';
import type { BenchResult } from './run';

const NODES = 100;
const TASKS = 10_000;
const WALLETS = 100;
const FUNCTIONS = 10;
const LATENCY_SAMPLES = 300;
const GiB = 1024 ** 3;

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/** A view with NODES nodes, WALLETS wallets in good standing and TASKS pending tasks. */
function loadedView(): SchedulerView {
  const view = new SchedulerView(0);
  for (let f = 0; f < FUNCTIONS; f++)
    view.apply(folded(`function-f${f}`, 0, functionDeployed(fnSpec({ functionId: `f${f}`, cpuInitialMillis: 250, memoryBytes: 64 * 1024 * 1024 }))));
  for (let n = 0; n < NODES; n++) view.apply(folded(`node-n${n}`, 0, nodeRegistered(`n${n}`, 32_000, 16 * GiB)));
  for (let w = 0; w < WALLETS; w++) {
    view.apply(folded(`wallet-w${w}`, 0, walletOpened(`w${w}`, 'greedy')));
    view.apply(folded(`standing-w${w}`, 0, standingChanged(`w${w}`, 'normal')));
  }
  for (let t = 0; t < TASKS; t++) {
    const task = { taskId: `t${t}`, functionId: `f${t % FUNCTIONS}`, walletId: `w${Math.floor(t / FUNCTIONS) % WALLETS}`, priority: t % 3, submittedAtMs: t };
    view.apply(folded(`task-t${t}`, 0, taskSubmitted(task)));
  }
  return view;
}

function placementThroughput(log: (line: string) => void): BenchResult[] {
  const view = loadedView();
  log(`placing ${TASKS} pending tasks on ${NODES} nodes (${WALLETS} wallets x ${FUNCTIONS} functions)`);
  const start = process.hrtime.bigint();
  const placed = dispatchInMemory(view, TASKS, 1).length;
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  if (placed !== TASKS) throw new Error(`only ${placed} of ${TASKS} tasks were placed`);
  const perSecond = placed / seconds;

  // Raw: the placement function alone on 100 idle nodes (no pool, no fold, no reservation).
  const nodes: PlacementNode[] = Array.from({ length: NODES }, (_, n) => ({
    nodeId: `n${n}`,
    schedulable: true,
    cpuMillis: 32_000,
    memoryBytes: 16 * GiB,
    reservedCpuMillis: (n * 37) % 16_000,
    reservedMemoryBytes: 0,
    idleKeys: new Set<string>(),
    busyKeys: new Map<string, number>(),
    reliability: 1,
  }));
  const rawStart = process.hrtime.bigint();
  let sink = 0;
  for (let t = 0; t < TASKS; t++) {
    const p = place(nodes, { key: containerKey(`w${t % WALLETS}`, `f${t % FUNCTIONS}`), cpuMillis: 250, memoryBytes: 64 * 1024 * 1024 });
    if (p.ok) sink++;
  }
  const rawPerSecond = sink / (Number(process.hrtime.bigint() - rawStart) / 1e9);
  return [
    {
      name: `placements/s (${NODES} nodes, ${TASKS} pending, pool+place+fold)`,
      value: perSecond,
      unit: 'placements/s',
      baseline: { name: 'place() alone', value: rawPerSecond },
      goal: '>= 1000/s',
      met: perSecond >= 1000,
    },
  ];
}

async function dispatchLatency(log: (line: string) => void): Promise<BenchResult[]> {
  const server = await NatsServerProcess.start();
  const nc: NatsConnection = await server.connect('bench-scheduler');
  const store = await JetStreamEventStore.connect(nc);
  const scheduler = await startService(SchedulerService, { NATS_URL: server.url, LOG_LEVEL: 'error' });
  await scheduler.nc.flush(); // its request subscriptions are in place on the server
  const beat = () =>
    nc.publish(
      heartbeatSubject('bench-node'),
      encodeJson({
        nodeId: 'bench-node',
        atMs: Date.now(),
        cpuMillis: 64_000,
        memoryBytes: 64 * GiB,
        usedCpuMillis: 0,
        usedMemoryBytes: 0,
        runningContainers: 0,
        idleContainers: [],
      }),
    );
  const beats = setInterval(beat, 500);
  const waiters = new Map<string, (atNs: bigint) => void>();
  const subscription = store.subscribe({ after: await store.headPosition(), categories: ['task', 'test'] }, (event: RecordedEvent) => {
    const key = isEvent(event, TaskDispatched) ? event.data.taskId : event.type === 'TestEvent' ? event.id : undefined;
    if (key) waiters.get(key)?.(process.hrtime.bigint());
  });
  const arrival = (key: string) => new Promise<bigint>((resolve) => waiters.set(key, resolve));
  try {
    const client = new MeshClient(nc);
    await store.append(
      'node-bench-node',
      [
        eventOf(NodeRegistered, 'bench-node-registered', {
          nodeId: 'bench-node',
          cpuMillis: 64_000,
          memoryBytes: 64 * GiB,
          labels: {},
          registeredAtMs: Date.now(),
        }),
      ],
      'any',
    );
    beat();
    await store.append(
      'wallet-bench',
      [
        eventOf(WalletOpened, 'bench-opened', {
          walletId: 'bench',
          currency: 'GRC',
          balanceAfter: '100',
          prevHash: '0'.repeat(64),
          kind: 'user',
          maxDebt: '0.5',
          minBalance: '0',
          policy: 'greedy',
          openedAtMs: Date.now(),
        }),
      ],
      'any',
    );
    await store.append(
      'standing-bench',
      [
        eventOf(StandingChanged, 'bench-standing', {
          walletId: 'bench',
          from: null,
          to: 'normal',
          balance: '100',
          currency: 'GRC',
          maxDebt: '0.5',
          minBalance: '0',
          policy: 'greedy',
          causeEventId: 'bench-opened',
          causeRevision: 0,
          changedAtMs: Date.now(),
        }),
      ],
      'any',
    );
    await client.requestRaw('mesh.api.scheduler.deploy-function', {
      functionId: 'bench-fn',
      image: 'mesh/task-base:latest',
      script: 'true',
      cpuInitialMillis: FUNCTION_DEFAULTS.cpuMinMillis,
    });
    const ours: number[] = [];
    const raw: number[] = [];
    log(`submit-to-dispatch x${LATENCY_SAMPLES}, one at a time (each cancelled after its dispatch to free the container)`);
    for (let i = 0; i < LATENCY_SAMPLES + 10; i++) {
      const taskId = `bench-${i}`;
      const dispatched = arrival(taskId);
      const start = process.hrtime.bigint();
      await client.requestRaw('mesh.api.scheduler.submit-task', { functionId: 'bench-fn', walletId: 'bench', taskId, input: { inline: 'aGk=' } });
      const at = await dispatched;
      if (i >= 10) ours.push(Number(at - start) / 1e6); // the first ones warm up the JIT and the consumers
      await client.requestRaw('mesh.api.scheduler.cancel-task', { taskId });

      const id = `bench-raw-${i}`;
      const received = arrival(id);
      const rawStart = process.hrtime.bigint();
      await store.append(`test-bench-${i}`, [{ id, type: 'TestEvent', data: { n: i } }], 'no_stream');
      const rawAt = await received;
      if (i >= 10) raw.push(Number(rawAt - rawStart) / 1e6);
    }
    ours.sort((a, b) => a - b);
    raw.sort((a, b) => a - b);
    return [
      {
        name: 'submit-to-dispatch latency p50',
        value: percentile(ours, 50),
        unit: 'ms',
        baseline: { name: 'append+subscribe round trip p50', value: percentile(raw, 50) },
      },
      {
        name: 'submit-to-dispatch latency p99',
        value: percentile(ours, 99),
        unit: 'ms',
        baseline: { name: 'append+subscribe round trip p99', value: percentile(raw, 99) },
      },
    ];
  } finally {
    clearInterval(beats);
    await subscription.stop();
    await scheduler.stop();
    await nc.drain().catch(() => undefined);
    await server.dispose();
  }
}

export async function run(log: (line: string) => void): Promise<BenchResult[]> {
  return [...placementThroughput(log), ...(await dispatchLatency(log))];
}
