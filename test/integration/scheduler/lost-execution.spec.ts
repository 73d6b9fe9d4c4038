import { setTimeout as sleep } from 'node:timers/promises';
import { EVENTS_STREAM, ExecutionStarted, ExecutionSucceeded, TaskRequeued, isEvent, nodesRequest, type EventData } from '@mesh/contracts';
import { useSchedulerHarness } from './harness';

/**
 * EXECUTION_LOST_AFTER_MS on a real nats-server: a live node stops listing an execution in its
 * heartbeats while the scheduler still believes it running there (its Execution* events never came).
 * With no result in the execution stream the attempt is requeued; with one, that result is applied.
 * The nodes are simulated (heartbeats on core NATS, events appended to the store).
 */
const LOST_AFTER_MS = 1500;

describe('scheduler: executions lost on a live node', () => {
  const h = useSchedulerHarness({
    connectionName: 'lost-execution-test',
    env: {
      EXECUTION_LOST_AFTER_MS: String(LOST_AFTER_MS),
      DISPATCH_START_TIMEOUT_MS: '600000',
      LIVENESS_CHECK_MS: '100',
      NODE_LOST_AFTER_MS: '60000',
      LOG_LEVEL: 'error',
    },
    minBalance: '0',
  });
  const { append, task } = h;
  const nodes = ['live-a', 'live-b'];
  /** What each simulated node says it runs. */
  const running = h.running;
  for (const n of nodes) running.set(n, []);

  /**
   * Beats every node now and waits until the scheduler has taken the beats in: NATS keeps one
   * connection's messages in order, so the reply to a later request means the beats were handled.
   */
  const beatNow = async () => {
    nodes.forEach(h.beat);
    await h.client.request(nodesRequest, {});
  };
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
    for (const nodeId of nodes) await h.registerNode(nodeId);
    await h.openWallet('w1');
    await h.setStanding('w1', 'normal');
    await h.liveNodes(2);
    await h.deploy('f', { script: 'true', maxAttempts: 2 });
  }, 60_000);

  it('leaves a listed execution alone, and requeues it once its live node stops listing it and no result was recorded', async () => {
    await h.submit({ functionId: 'f', walletId: 'w1', taskId: 'lost-1', input: { inline: '' } });
    const first = await h.taskIn('lost-1', 'dispatched');
    const nodeId = first.nodeId ?? '';
    running.set(nodeId, [{ taskId: 'lost-1', executionId: 'lost-1-1' }]);
    await append('execution-lost-1-1', ExecutionStarted, 'lost-1-1-started', started('lost-1', 1, nodeId));
    await h.taskIn('lost-1', 'running');

    // Listed in every beat: it stays running past the window.
    await sleep(LOST_AFTER_MS * 2);
    expect(await task('lost-1')).toMatchObject({ state: 'running', attempt: 1 });

    // The node no longer runs it, and its result never reached the log: requeued, then dispatched once as attempt 2.
    running.set(nodeId, []);
    const second = await h.taskIn('lost-1', 'dispatched', 2);
    expect(second.history.map((e) => e.type)).toEqual(['TaskSubmitted', 'TaskDispatched', 'TaskRunning', 'TaskRequeued', 'TaskDispatched']);
    const requeue = (await h.store.read('task-lost-1'))[3];
    if (!isEvent(requeue, TaskRequeued)) throw new Error(`expected TaskRequeued, got ${requeue.type}`);
    expect(requeue.data).toMatchObject({ attempt: 1, reason: 'infrastructure' });
    expect(requeue.data.detail).toMatch(new RegExp(`^execution lost: node ${nodeId} has not listed execution lost-1-1 for ${LOST_AFTER_MS} ms`));
  });

  it('applies the recorded result instead when the execution ended but its events never reached the scheduler', async () => {
    const dispatched = await task('lost-1');
    expect(dispatched).toMatchObject({ state: 'dispatched', attempt: 2 });
    const nodeId = dispatched.nodeId ?? '';
    // The node takes attempt 2 up (listed), while the scheduler's execution consumer is gone: its events do not arrive.
    const jsm = await h.nc.jetstreamManager();
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

    const done = await h.taskIn('lost-1', 'succeeded');
    expect(done.history.map((e) => e.type)).toEqual([
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
