import { setTimeout as sleep } from 'node:timers/promises';
import { EVENTS_STREAM, ExecutionStarted, ExecutionSucceeded, TaskRequeued, isEvent } from '@mesh/contracts';
import { useSchedulerHarness } from './harness';

/**
 * DISPATCH_START_TIMEOUT_MS on a real nats-server: a node that keeps beating but never starts what
 * it was given (its container-manager is stuck) loses the attempt, and the task runs elsewhere.
 * The nodes are simulated (heartbeats on core NATS, events appended to the store).
 */
const START_TIMEOUT_MS = 1500;

describe('scheduler: start timeout of a dispatched attempt', () => {
  const h = useSchedulerHarness({
    connectionName: 'start-timeout-test',
    env: {
      DISPATCH_START_TIMEOUT_MS: String(START_TIMEOUT_MS),
      LIVENESS_CHECK_MS: '100',
      NODE_LOST_AFTER_MS: '60000',
      LOG_LEVEL: 'error',
    },
    minBalance: '0',
  });
  const { append, task } = h;

  beforeAll(async () => {
    await h.registerNode('stuck-a');
    await h.registerNode('stuck-b');
    await h.openWallet('w1');
    await h.setStanding('w1', 'normal');
    await h.liveNodes(2);
  }, 60_000);

  it('requeues an attempt its live node never started, and leaves a started one alone', async () => {
    await h.deploy('f', { script: 'true', maxAttempts: 2 });
    await h.submit({ functionId: 'f', walletId: 'w1', taskId: 'stuck-1', input: { inline: '' } });

    // Nobody starts attempt 1: it is requeued (infrastructure) and dispatched again as attempt 2.
    const second = await h.taskIn('stuck-1', 'dispatched', 2);
    const history = second.history.map((e) => e.type);
    expect(history).toEqual(['TaskSubmitted', 'TaskDispatched', 'TaskRequeued', 'TaskDispatched']);
    const requeue = (await h.store.read('task-stuck-1'))[2];
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
    await h.taskIn('stuck-1', 'running');
    await sleep(START_TIMEOUT_MS * 2);
    expect(await task('stuck-1')).toMatchObject({ state: 'running', attempt: 2 });
  });

  it('applies what the execution stream recorded when those events never reached the scheduler (no requeue)', async () => {
    await h.submit({ functionId: 'f', walletId: 'w1', taskId: 'quick-1', input: { inline: '' } });
    const dispatched = await h.taskIn('quick-1', 'dispatched');
    const nodeId = dispatched.nodeId ?? '';
    // The node runs it start to end between two heartbeats, and the scheduler's execution consumer is gone (its events are lost).
    await (await h.nc.jetstreamManager()).consumers.delete(EVENTS_STREAM, 'scheduler_execution');
    const ref = { executionId: 'quick-1-1', taskId: 'quick-1', attempt: 1, containerId: 'cq', nodeId, walletId: 'w1', functionId: 'f' };
    await append('execution-quick-1-1', ExecutionStarted, 'quick-1-1-started', { ...ref, startedAtMs: Date.now(), warm: false });
    await append('execution-quick-1-1', ExecutionSucceeded, 'quick-1-1-succeeded', { ...ref, outputRef: { bucket: 'mesh-output', key: 'q' }, durationMs: 1 });

    const done = await h.taskIn('quick-1', 'succeeded');
    expect(done.history.map((e) => e.type)).toEqual(['TaskSubmitted', 'TaskDispatched', 'TaskRunning', 'TaskSucceeded']);
  });
});
