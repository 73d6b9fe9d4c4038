import { setTimeout as sleep } from 'node:timers/promises';
import type { NatsConnection } from 'nats';
import {
  EVENTS_STREAM,
  ExecutionStarted,
  ExecutionSucceeded,
  NodeRegistered,
  StandingChanged,
  TaskRequeued,
  WalletOpened,
  eventOf,
  heartbeatSubject,
  isEvent,
  taskRequest,
  type EventData,
  type EventDefinition,
} from '@mesh/contracts';
import { JetStreamEventStore } from '@mesh/eventstore';
import { MeshClient, encodeJson, startService, type RunningService } from '@mesh/runtime';
import { NatsServerProcess, eventually } from '@mesh/testing';
import { SchedulerService } from '../../../apps/scheduler/src/main';

/**
 * DISPATCH_START_TIMEOUT_MS on a real nats-server: a node that keeps beating but never starts what
 * it was given (its container-manager is stuck) loses the attempt, and the task runs elsewhere.
 * The nodes are simulated (heartbeats on core NATS, events appended to the store).
 */
const GiB = 1024 ** 3;
const START_TIMEOUT_MS = 1500;

describe('scheduler: start timeout of a dispatched attempt', () => {
  let server: NatsServerProcess;
  let nc: NatsConnection;
  let store: JetStreamEventStore;
  let client: MeshClient;
  let scheduler: RunningService;
  let beatTimer: NodeJS.Timeout;
  const nodes = ['stuck-a', 'stuck-b'];

  const append = async <D extends EventDefinition>(stream: string, definition: D, id: string, data: EventData<D>) => {
    await store.append(stream, [eventOf(definition, id, data)], 'any');
  };
  const beat = (nodeId: string) =>
    nc.publish(
      heartbeatSubject(nodeId),
      encodeJson({
        nodeId,
        atMs: Date.now(),
        cpuMillis: 8000,
        memoryBytes: 16 * GiB,
        usedCpuMillis: 0,
        usedMemoryBytes: 0,
        runningContainers: 0,
        idleContainers: [],
      }),
    );
  const task = (taskId: string) => client.request(taskRequest, { taskId });

  beforeAll(async () => {
    server = await NatsServerProcess.start();
    nc = await server.connect('start-timeout-test');
    store = await JetStreamEventStore.connect(nc);
    client = new MeshClient(nc);
    scheduler = await startService(SchedulerService, {
      NATS_URL: server.url,
      DISPATCH_START_TIMEOUT_MS: String(START_TIMEOUT_MS),
      LIVENESS_CHECK_MS: '100',
      NODE_LOST_AFTER_MS: '60000',
      LOG_LEVEL: 'error',
    });
    await scheduler.nc.flush();
    for (const nodeId of nodes) {
      await append(`node-${nodeId}`, NodeRegistered, `${nodeId}-registered`, {
        nodeId,
        cpuMillis: 8000,
        memoryBytes: 16 * GiB,
        labels: {},
        registeredAtMs: Date.now(),
      });
    }
    beatTimer = setInterval(() => nodes.forEach(beat), 200);
    nodes.forEach(beat);
    await append('wallet-w1', WalletOpened, 'w1-opened', {
      walletId: 'w1',
      currency: 'GRC',
      balanceAfter: '0',
      prevHash: '0'.repeat(64),
      kind: 'user',
      maxDebt: '0.5',
      minBalance: '0',
      policy: 'greedy',
      openedAtMs: Date.now(),
    });
    await append('standing-w1', StandingChanged, 'w1-standing-1', {
      walletId: 'w1',
      from: null,
      to: 'normal',
      balance: '1',
      currency: 'GRC',
      maxDebt: '0.5',
      minBalance: '0',
      policy: 'greedy',
      causeEventId: 'w1-opened',
      causeRevision: 0,
      changedAtMs: Date.now(),
    });
    await eventually(
      async () => ((await client.requestRaw('mesh.query.scheduler.nodes', {})) as { nodes: { alive: boolean }[] }).nodes.filter((n) => n.alive).length === 2,
      10_000,
      'two live nodes',
    );
  }, 60_000);

  afterAll(async () => {
    clearInterval(beatTimer);
    await scheduler?.stop();
    await nc?.drain().catch(() => undefined);
    await server?.dispose();
  });

  it('requeues an attempt its live node never started, and leaves a started one alone', async () => {
    await client.requestRaw('mesh.api.scheduler.deploy-function', {
      functionId: 'f',
      image: 'mesh/task-base:latest',
      script: 'true',
      cpuInitialMillis: 100,
      memoryBytes: 64 * 1024 * 1024,
      maxAttempts: 2,
    });
    await client.requestRaw('mesh.api.scheduler.submit-task', { functionId: 'f', walletId: 'w1', taskId: 'stuck-1', input: { inline: '' } });

    // Nobody starts attempt 1: it is requeued (infrastructure) and dispatched again as attempt 2.
    const second = await eventually(
      async () => {
        const t = await task('stuck-1');
        return t.attempt === 2 && t.state === 'dispatched' && t;
      },
      15_000,
      'attempt 2 dispatched',
    );
    const history = second.history.map((h) => h.type);
    expect(history).toEqual(['TaskSubmitted', 'TaskDispatched', 'TaskRequeued', 'TaskDispatched']);
    const requeue = (await store.read('task-stuck-1'))[2];
    if (!isEvent(requeue, TaskRequeued)) throw new Error(`expected TaskRequeued, got ${requeue.type}`);
    expect(requeue.data).toMatchObject({ attempt: 1, reason: 'infrastructure' });
    expect(requeue.data.detail).toMatch(/did not start execution stuck-1-1 within 1500 ms/);

    // Attempt 2 starts: it stays running past the timeout.
    const { executionId, nodeId } = second;
    if (executionId === undefined || nodeId === undefined) throw new Error('attempt 2 is on no node');
    await append(`execution-${executionId}`, ExecutionStarted, `${executionId}-started`, {
      executionId,
      taskId: 'stuck-1',
      attempt: 2,
      containerId: 'c1',
      nodeId,
      walletId: 'w1',
      functionId: 'f',
      startedAtMs: Date.now(),
      warm: false,
    });
    await eventually(async () => (await task('stuck-1')).state === 'running', 10_000, 'attempt 2 running');
    await sleep(START_TIMEOUT_MS * 2);
    expect(await task('stuck-1')).toMatchObject({ state: 'running', attempt: 2 });
  });

  it('applies what the execution stream recorded when those events never reached the scheduler (no requeue)', async () => {
    await client.requestRaw('mesh.api.scheduler.submit-task', { functionId: 'f', walletId: 'w1', taskId: 'quick-1', input: { inline: '' } });
    const dispatched = await eventually(
      async () => {
        const t = await task('quick-1');
        return t.state === 'dispatched' && t;
      },
      10_000,
      'dispatched',
    );
    const nodeId = dispatched.nodeId ?? '';
    // The node runs it start to end between two heartbeats, and the scheduler's execution consumer is gone (its events are lost).
    await (await nc.jetstreamManager()).consumers.delete(EVENTS_STREAM, 'scheduler_execution');
    const ref = { executionId: 'quick-1-1', taskId: 'quick-1', attempt: 1, containerId: 'cq', nodeId, walletId: 'w1', functionId: 'f' };
    await append('execution-quick-1-1', ExecutionStarted, 'quick-1-1-started', { ...ref, startedAtMs: Date.now(), warm: false });
    await append('execution-quick-1-1', ExecutionSucceeded, 'quick-1-1-succeeded', { ...ref, outputRef: { bucket: 'mesh-output', key: 'q' }, durationMs: 1 });

    const done = await eventually(
      async () => {
        const t = await task('quick-1');
        return t.state === 'succeeded' && t;
      },
      15_000,
      'succeeded from the recorded result',
    );
    expect(done.history.map((h) => h.type)).toEqual(['TaskSubmitted', 'TaskDispatched', 'TaskRunning', 'TaskSucceeded']);
  });
});
