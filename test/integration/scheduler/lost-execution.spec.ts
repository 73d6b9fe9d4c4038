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
  nodesRequest,
  taskRequest,
  type EventData,
  type EventDefinition,
  type NodeHeartbeat,
} from '@mesh/contracts';
import { JetStreamEventStore } from '@mesh/eventstore';
import { MeshClient, encodeJson, startService, type RunningService } from '@mesh/runtime';
import { NatsServerProcess, eventually } from '@mesh/testing';
import { SchedulerService } from '../../../apps/scheduler/src/main';

/**
 * EXECUTION_LOST_AFTER_MS on a real nats-server: a live node stops listing an execution in its
 * heartbeats while the scheduler still believes it running there (its Execution* events never came).
 * With no result in the execution stream the attempt is requeued; with one, that result is applied.
 * The nodes are simulated (heartbeats on core NATS, events appended to the store).
 */
const GiB = 1024 ** 3;
const LOST_AFTER_MS = 1500;

describe('scheduler: executions lost on a live node', () => {
  let server: NatsServerProcess;
  let nc: NatsConnection;
  let store: JetStreamEventStore;
  let client: MeshClient;
  let scheduler: RunningService;
  let beatTimer: NodeJS.Timeout;
  const nodes = ['live-a', 'live-b'];
  /** What each simulated node says it runs. */
  const running = new Map<string, { taskId: string; executionId: string }[]>(nodes.map((n) => [n, []]));

  const append = async <D extends EventDefinition>(stream: string, definition: D, id: string, data: EventData<D>) => {
    await store.append(stream, [eventOf(definition, id, data)], 'any');
  };
  const beat = (nodeId: string) => {
    const heartbeat: NodeHeartbeat = {
      nodeId,
      atMs: Date.now(),
      cpuMillis: 8000,
      memoryBytes: 16 * GiB,
      usedCpuMillis: 0,
      usedMemoryBytes: 0,
      runningContainers: 0,
      idleContainers: [],
      runningExecutions: running.get(nodeId) ?? [],
    };
    nc.publish(heartbeatSubject(nodeId), encodeJson(heartbeat));
  };
  /**
   * Beats every node now and waits until the scheduler has taken the beats in: NATS keeps one
   * connection's messages in order, so the reply to a later request means the beats were handled.
   */
  const beatNow = async () => {
    nodes.forEach(beat);
    await client.request(nodesRequest, {});
  };
  const task = (taskId: string) => client.request(taskRequest, { taskId });
  const started = (taskId: string, attempt: number, nodeId: string): EventData<typeof ExecutionStarted> => ({
    executionId: `${taskId}-${attempt}`,
    taskId,
    attempt,
    containerId: `c-${taskId}-${attempt}`,
    nodeId,
    walletId: 'w1',
    functionId: 'f',
    startedAtMs: Date.now(),
    warm: false,
  });

  beforeAll(async () => {
    server = await NatsServerProcess.start();
    nc = await server.connect('lost-execution-test');
    store = await JetStreamEventStore.connect(nc);
    client = new MeshClient(nc);
    scheduler = await startService(SchedulerService, {
      NATS_URL: server.url,
      EXECUTION_LOST_AFTER_MS: String(LOST_AFTER_MS),
      DISPATCH_START_TIMEOUT_MS: '600000',
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
    await eventually(async () => (await client.request(nodesRequest, {})).nodes.filter((n) => n.alive).length === 2, 10_000, 'two live nodes');
    await client.requestRaw('mesh.api.scheduler.deploy-function', {
      functionId: 'f',
      image: 'mesh/task-base:latest',
      script: 'true',
      cpuInitialMillis: 100,
      memoryBytes: 64 * 1024 * 1024,
      maxAttempts: 2,
    });
  }, 60_000);

  afterAll(async () => {
    clearInterval(beatTimer);
    await scheduler?.stop();
    await nc?.drain().catch(() => undefined);
    await server?.dispose();
  });

  it('leaves a listed execution alone, and requeues it once its live node stops listing it and no result was recorded', async () => {
    await client.requestRaw('mesh.api.scheduler.submit-task', { functionId: 'f', walletId: 'w1', taskId: 'lost-1', input: { inline: '' } });
    const first = await eventually(
      async () => {
        const t = await task('lost-1');
        return t.state === 'dispatched' && t;
      },
      10_000,
      'attempt 1 dispatched',
    );
    const nodeId = first.nodeId ?? '';
    running.set(nodeId, [{ taskId: 'lost-1', executionId: 'lost-1-1' }]);
    await append('execution-lost-1-1', ExecutionStarted, 'lost-1-1-started', started('lost-1', 1, nodeId));
    await eventually(async () => (await task('lost-1')).state === 'running', 10_000, 'attempt 1 running');

    // Listed in every beat: it stays running past the window.
    await sleep(LOST_AFTER_MS * 2);
    expect(await task('lost-1')).toMatchObject({ state: 'running', attempt: 1 });

    // The node no longer runs it, and its result never reached the log: requeued, then dispatched once as attempt 2.
    running.set(nodeId, []);
    const second = await eventually(
      async () => {
        const t = await task('lost-1');
        return t.attempt === 2 && t.state === 'dispatched' && t;
      },
      15_000,
      'attempt 2 dispatched',
    );
    expect(second.history.map((h) => h.type)).toEqual(['TaskSubmitted', 'TaskDispatched', 'TaskRunning', 'TaskRequeued', 'TaskDispatched']);
    const requeue = (await store.read('task-lost-1'))[3];
    if (!isEvent(requeue, TaskRequeued)) throw new Error(`expected TaskRequeued, got ${requeue.type}`);
    expect(requeue.data).toMatchObject({ attempt: 1, reason: 'infrastructure' });
    expect(requeue.data.detail).toMatch(new RegExp(`^execution lost: node ${nodeId} has not listed execution lost-1-1 for ${LOST_AFTER_MS} ms`));
  });

  it('applies the recorded result instead when the execution ended but its events never reached the scheduler', async () => {
    const dispatched = await task('lost-1');
    expect(dispatched).toMatchObject({ state: 'dispatched', attempt: 2 });
    const nodeId = dispatched.nodeId ?? '';
    // The node takes attempt 2 up (listed), while the scheduler's execution consumer is gone: its events do not arrive.
    const jsm = await nc.jetstreamManager();
    await jsm.consumers.delete(EVENTS_STREAM, 'scheduler_execution');
    running.set(nodeId, [{ taskId: 'lost-1', executionId: 'lost-1-2' }]);
    await beatNow();
    await append('execution-lost-1-2', ExecutionStarted, 'lost-1-2-started', started('lost-1', 2, nodeId));
    await append('execution-lost-1-2', ExecutionSucceeded, 'lost-1-2-succeeded', {
      executionId: 'lost-1-2',
      taskId: 'lost-1',
      attempt: 2,
      containerId: 'c-lost-1-2',
      nodeId,
      walletId: 'w1',
      functionId: 'f',
      outputRef: { bucket: 'mesh-output', key: 'lost-1-2' },
      durationMs: 5,
    });
    running.set(nodeId, []);

    const done = await eventually(
      async () => {
        const t = await task('lost-1');
        return t.state === 'succeeded' && t;
      },
      15_000,
      'attempt 2 succeeded from its recorded result',
    );
    expect(done.history.map((h) => h.type)).toEqual([
      'TaskSubmitted',
      'TaskDispatched',
      'TaskRunning',
      'TaskRequeued',
      'TaskDispatched',
      'TaskRunning',
      'TaskSucceeded',
    ]);
    expect(done).toMatchObject({ attempt: 2, outputRef: { bucket: 'mesh-output', key: 'lost-1-2' } });
  });
});
