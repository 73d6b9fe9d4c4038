import {
  ExecutionAborted,
  ExecutionFailed,
  ExecutionStarted,
  ExecutionSucceeded,
  NodeLeft,
  PricePlanSet,
  cancelTaskRequest,
  deployFunctionRequest,
  functionRequest,
  functionsRequest,
  nodesRequest,
  poolsRequest,
  submitTaskRequest,
  taskRequest,
  tasksRequest,
  pricePlanStream,
  type RecordedEvent,
  type TaskDetail,
  LIMITS,
} from '@mesh/contracts';
import { RequestError } from '@mesh/runtime';
import { eventually } from '@mesh/testing';
import { useSchedulerHarness } from './harness';

/**
 * The scheduler on a real nats-server. The ledger, the credit-manager and two container-managers
 * (nodes `node-a`, `node-b`) are simulated by appending their events straight into the store and
 * publishing heartbeats on core NATS.
 */
const LOST_AFTER_MS = 2500;

describe('scheduler on NATS', () => {
  const h = useSchedulerHarness({
    connectionName: 'scheduler-test',
    env: { NODE_LOST_AFTER_MS: String(LOST_AFTER_MS), LIVENESS_CHECK_MS: '100', LOG_LEVEL: 'warn' },
    minBalance: '1',
  });
  const { append, beat, registerNode, openWallet, setStanding, deploy, submit, task, taskIn } = h;
  const { beating, idle } = h;
  /** Waits until the scheduler counts the one idle warm container the node reports. */
  const warmContainerSeen = (nodeId: string) =>
    eventually(
      async () =>
        ((await h.client.requestRaw('mesh.query.scheduler.nodes', {})) as { nodes: { nodeId: string; idleContainers: number }[] }).nodes.find(
          (n) => n.nodeId === nodeId,
        )?.idleContainers === 1,
      10_000,
      'the warm container seen',
    );
  const refusal = async (subject: string, body: unknown) => {
    try {
      await h.client.requestRaw(subject, body);
    } catch (err) {
      if (err instanceof RequestError) return err;
      throw err;
    }
    throw new Error(`${subject} accepted ${JSON.stringify(body)}`);
  };
  /** Simulated container-manager: the execution events of the current attempt. */
  const execution = (t: TaskDetail, containerId = 'c-sim') => {
    const { executionId, nodeId } = t;
    if (executionId === undefined || nodeId === undefined) throw new Error(`task ${t.taskId} has no attempt on a node`);
    return { executionId, taskId: t.taskId, attempt: t.attempt, containerId, nodeId, walletId: t.walletId, functionId: t.functionId };
  };
  const started = (t: TaskDetail) =>
    append(`execution-${t.executionId}`, ExecutionStarted, `${t.executionId}-started`, { ...execution(t), startedAtMs: Date.now(), warm: false });
  const dispatchesOf = async (taskId: string) => (await h.store.read(`task-${taskId}`)).filter((e: RecordedEvent) => e.type === 'TaskDispatched');

  beforeAll(async () => {
    await registerNode('node-a');
    await registerNode('node-b');
    await h.liveNodes(2);
  }, 60_000);

  it('runs a task through its lifecycle: pending, dispatched, running, succeeded, with every transition and its position', async () => {
    const deployed = (await deploy('echo')) as Record<string, unknown>;
    expect(deployed).toMatchObject({
      functionId: 'echo',
      version: 1,
      cpuMinMillis: 100,
      cpuInitialMillis: 100,
      cpuMaxMillis: 4000,
      maxAttempts: 3,
      network: false,
      changed: true,
    });
    expect(await deploy('echo')).toMatchObject({ version: 1, changed: false });
    await openWallet('alice');
    await setStanding('alice', 'normal');
    const { taskId } = await submit({ functionId: 'echo', walletId: 'alice', taskId: 'life-1' });
    expect(taskId).toBe('life-1');
    const t = await taskIn(taskId, 'dispatched');
    expect(['node-a', 'node-b']).toContain(t.nodeId);
    expect(t.executionId).toBe('life-1-1');
    const [dispatch] = await dispatchesOf(taskId);
    expect(dispatch.data).toMatchObject({ nodeId: t.nodeId, attempt: 1, function: { functionId: 'echo', version: 1 }, input: { inline: 'aGk=' } });
    await started(t);
    await taskIn(taskId, 'running');
    const run = execution(t);
    await append(`execution-${run.executionId}`, ExecutionSucceeded, `${run.executionId}-succeeded`, {
      ...run,
      outputRef: { bucket: 'mesh-output', key: run.executionId },
      durationMs: 12,
    });
    const done = await taskIn(taskId, 'succeeded');
    expect(done).toMatchObject({ containerId: 'c-sim', outputRef: { bucket: 'mesh-output', key: 'life-1-1' }, durationMs: 12 });
    expect(done.history.map((e) => e.type)).toEqual(['TaskSubmitted', 'TaskDispatched', 'TaskRunning', 'TaskSucceeded']);
    expect(done.history.every((e) => /^\d+$/.test(e.position))).toBe(true);
    const stored = await h.store.read(`task-${taskId}`);
    expect(new Set(stored.map((e: RecordedEvent) => e.correlationId))).toEqual(new Set(['life-1-submitted']));
    const health = (await h.client.requestRaw('mesh.api.scheduler.health', {})) as { positions: Record<string, string>; details: Record<string, number> };
    expect(BigInt(health.positions.view)).toBeGreaterThan(0n);
    // a redelivered result changes nothing
    await append(`execution-${t.executionId}`, ExecutionSucceeded, `${t.executionId}-succeeded-again`, {
      ...execution(t),
      outputRef: { bucket: 'mesh-output', key: 'other' },
      durationMs: 99,
    });
    const listed = (await h.client.requestRaw('mesh.query.scheduler.tasks', { walletId: 'alice' })) as { tasks: { taskId: string; state: string }[] };
    expect(listed.tasks).toEqual([expect.objectContaining({ taskId: 'life-1', state: 'succeeded' })]);
    expect((await task(taskId)).history).toHaveLength(4);
  });

  it('refuses bad input with a clear error and writes no event', async () => {
    await deploy('bad-fn');
    await openWallet('bad-w');
    await openWallet('provider-w', 'greedy', 'provider');
    await setStanding('bad-w', 'normal');
    const { taskId } = await submit({ functionId: 'bad-fn', walletId: 'bad-w' });
    await h.client.requestRaw('mesh.api.scheduler.cancel-task', { taskId });
    const head = await h.store.headPosition();
    const cases: [string, unknown, string, RegExp][] = [
      ['mesh.api.scheduler.submit-task', { functionId: 'nope', walletId: 'bad-w', input: { inline: '' } }, 'unknown_function', /no function nope/],
      ['mesh.api.scheduler.submit-task', { functionId: 'bad-fn', walletId: 'nobody', input: { inline: '' } }, 'unknown_wallet', /no wallet nobody/],
      ['mesh.api.scheduler.submit-task', { functionId: 'bad-fn', walletId: 'provider-w', input: { inline: '' } }, 'provider_wallet', /provider wallet/],
      [
        'mesh.api.scheduler.submit-task',
        { functionId: 'bad-fn', walletId: 'bad-w', input: { inline: Buffer.alloc(LIMITS.requestInputBytesMax + 1).toString('base64') } },
        'invalid_input',
        /input\.inline: inline input too large.*objectRef/,
      ],
      [
        'mesh.api.scheduler.submit-task',
        { functionId: 'bad-fn', walletId: 'bad-w', input: { inline: 'aGk=', objectRef: { bucket: 'b', key: 'k' } } },
        'invalid_input',
        /exactly one of inline/,
      ],
      ['mesh.api.scheduler.submit-task', { functionId: 'bad.fn', walletId: 'bad-w', input: { inline: '' } }, 'invalid_input', /functionId: must match/],
      [
        'mesh.api.scheduler.submit-task',
        { functionId: 'bad-fn', walletId: 'bad-w', input: { inline: '' }, priority: 10 },
        'invalid_input',
        /priority: must be <= 9/,
      ],
      [
        'mesh.api.scheduler.deploy-function',
        { functionId: 'mm', image: 'img', script: 'x', cpuMinMillis: 3000, cpuMaxMillis: 1000 },
        'invalid_input',
        /cpuMinMillis: must be <= cpuMaxMillis/,
      ],
      [
        'mesh.api.scheduler.deploy-function',
        { functionId: 'huge', image: 'img', script: 'x', cpuInitialMillis: 64000, cpuMaxMillis: 64000 },
        'exceeds_node_capacity',
        /fit no registered node/,
      ],
      [
        'mesh.api.scheduler.deploy-function',
        { functionId: 'x'.repeat(65), image: 'img', script: 'x' },
        'invalid_input',
        /functionId: must match \[A-Za-z0-9_-\]\{1,64\}/,
      ],
      [
        'mesh.api.scheduler.deploy-function',
        { functionId: 'planned', image: 'img', script: 'x', pricePlanId: 'no-such-plan' },
        'unknown_price_plan',
        /no price plan no-such-plan: create it first/,
      ],
      ['mesh.api.scheduler.cancel-task', { taskId }, 'task_finished', /already cancelled/],
      ['mesh.api.scheduler.cancel-task', { taskId: 'never-submitted' }, 'unknown_task', /no task never-submitted/],
      ['mesh.query.scheduler.task', { taskId: 'a b' }, 'invalid_input', /taskId: must match/],
    ];
    for (const [subject, body, code, message] of cases) {
      const err = await refusal(subject, body);
      expect({ subject, code: err.code }).toEqual({ subject, code });
      expect(err.message).toMatch(message);
    }
    expect(await h.store.headPosition()).toBe(head);

    // Once the plan exists (the credit-manager's PricePlanSet), the same deploy is accepted.
    await append(pricePlanStream('a-plan'), PricePlanSet, 'a-plan-v1', {
      planId: 'a-plan',
      version: 1,
      currency: 'GRC',
      cpuPerCoreHour: '1',
      memoryPerGibHour: '0',
      perInvocation: '0',
      billing: 'used',
      effectiveFromMs: 0,
    });
    expect(await deploy('planned', { pricePlanId: 'a-plan' })).toMatchObject({ functionId: 'planned', pricePlanId: 'a-plan', changed: true });
  });

  it('holds a wallet without standing, overdrawn, or low under conservative; dispatches by itself once it recovers', async () => {
    await deploy('gate');
    await openWallet('gated');
    await openWallet('careful', 'conservative');
    const { taskId } = await submit({ functionId: 'gate', walletId: 'gated' });
    const careful = await submit({ functionId: 'gate', walletId: 'careful' });
    await setStanding('gated', 'overdrawn');
    await setStanding('careful', 'low', 'conservative');
    const pools = async () =>
      (await h.client.requestRaw('mesh.query.scheduler.pools', {})) as {
        wallets: { walletId: string; pending: number; dispatchable: boolean; standing: string }[];
      };
    await eventually(async () => (await pools()).wallets.find((w) => w.walletId === 'gated')?.standing === 'overdrawn', 10_000, 'the standing folded');
    expect((await pools()).wallets.find((w) => w.walletId === 'gated')).toMatchObject({ pending: 1, dispatchable: false });
    expect((await pools()).wallets.find((w) => w.walletId === 'careful')).toMatchObject({ pending: 1, dispatchable: false, standing: 'low' });
    // the dispatch loop ran many times meanwhile (timer 250 ms + every event): still nothing dispatched
    expect((await task(taskId)).state).toBe('pending');
    expect(await dispatchesOf(taskId)).toHaveLength(0);
    await setStanding('gated', 'normal'); // a deposit repaid the debt
    await taskIn(taskId, 'dispatched');
    expect((await task(careful.taskId)).state).toBe('pending');
    await setStanding('careful', 'normal', 'conservative');
    await taskIn(careful.taskId, 'dispatched');
  });

  it('requeues an attempt aborted for suspension, and fails the task after its max attempts', async () => {
    await deploy('abortive', { maxAttempts: 2 });
    await openWallet('debtor');
    await setStanding('debtor', 'normal');
    const { taskId } = await submit({ functionId: 'abortive', walletId: 'debtor' });
    const abort = async (attempt: number) => {
      const t = await taskIn(taskId, 'dispatched', attempt);
      await started(t);
      await taskIn(taskId, 'running', attempt);
      await setStanding('debtor', 'suspended');
      await append(`execution-${t.executionId}`, ExecutionAborted, `${t.executionId}-aborted`, {
        ...execution(t),
        reason: 'suspended',
        abortedAtMs: Date.now(),
      });
    };
    await abort(1);
    const requeued = await taskIn(taskId, 'pending', 2);
    expect(requeued.history.at(-1)).toMatchObject({ type: 'TaskRequeued', reason: 'aborted', attempt: 1 });
    expect(await dispatchesOf(taskId)).toHaveLength(1); // suspended: no new dispatch
    await setStanding('debtor', 'normal');
    await abort(2);
    const failed = await taskIn(taskId, 'failed');
    expect(failed.reason).toMatch(/^aborted: attempt 2 of 2 ended \(wallet suspended\); no attempts left$/);
    expect(await dispatchesOf(taskId)).toHaveLength(2);
  });

  it('retries a retryable failure on another attempt and fails a non-retryable one with its exit code', async () => {
    await deploy('flaky');
    await openWallet('flaky-w');
    await setStanding('flaky-w', 'normal');
    const { taskId } = await submit({ functionId: 'flaky', walletId: 'flaky-w' });
    let t = await taskIn(taskId, 'dispatched', 1);
    const fail = (retryable: boolean, reason: 'agent-restart' | 'exit-code', exitCode?: number) =>
      append(`execution-${t.executionId}`, ExecutionFailed, `${t.executionId}-failed`, {
        ...execution(t),
        reason,
        retryable,
        stderrTail: 'boom',
        durationMs: 5,
        ...(exitCode !== undefined ? { exitCode } : {}),
      });
    await fail(true, 'agent-restart');
    t = await taskIn(taskId, 'dispatched', 2);
    await fail(false, 'exit-code', 7);
    expect(await taskIn(taskId, 'failed')).toMatchObject({ reason: 'exit-code', exitCode: 7, attempt: 2 });
  });

  it('declares a silent node lost and requeues its tasks to the other node; reliability drops', async () => {
    await registerNode('node-c');
    await deploy('lossy');
    await openWallet('lossy-w');
    await setStanding('lossy-w', 'normal');
    // node-c holds an idle warm container of (lossy-w, lossy): the task goes there
    idle.set('node-c', [{ walletId: 'lossy-w', functionId: 'lossy', containerId: 'c-warm' }]);
    beat('node-c');
    await warmContainerSeen('node-c');
    const { taskId } = await submit({ functionId: 'lossy', walletId: 'lossy-w' });
    const first = await taskIn(taskId, 'dispatched', 1);
    expect(first.nodeId).toBe('node-c');
    await started(first);
    await taskIn(taskId, 'running', 1);
    beating.delete('node-c');
    const second = await taskIn(taskId, 'dispatched', 2);
    expect(['node-a', 'node-b']).toContain(second.nodeId);
    expect(second.history.find((e) => e.type === 'TaskRequeued')).toMatchObject({ reason: 'node-lost', attempt: 1 });
    const nodes = (await h.client.requestRaw('mesh.query.scheduler.nodes', {})) as {
      nodes: { nodeId: string; alive: boolean; lost: number; reliability: number; tasks: number }[];
    };
    expect(nodes.nodes.find((n) => n.nodeId === 'node-c')).toMatchObject({ alive: false, lost: 1, reliability: 0.5, tasks: 0 });
    // a late result of the lost attempt is ignored
    await append(`execution-${first.executionId}`, ExecutionSucceeded, `${first.executionId}-late`, {
      ...execution(first, 'c-warm'),
      outputRef: { bucket: 'mesh-output', key: 'late' },
      durationMs: 1,
    });
    await started(second);
    await taskIn(taskId, 'running', 2);
    expect((await task(taskId)).executionId).toBe(`${taskId}-2`);
  });

  it('requeues the tasks of a node that left cleanly without lowering its reliability', async () => {
    await registerNode('node-d');
    await deploy('leaving');
    await openWallet('leaving-w');
    idle.set('node-d', [{ walletId: 'leaving-w', functionId: 'leaving', containerId: 'c-warm-d' }]);
    beat('node-d');
    await warmContainerSeen('node-d');
    await setStanding('leaving-w', 'normal');
    const { taskId } = await submit({ functionId: 'leaving', walletId: 'leaving-w' });
    expect((await taskIn(taskId, 'dispatched', 1)).nodeId).toBe('node-d');
    beating.delete('node-d');
    await append('node-node-d', NodeLeft, 'node-d-left', { nodeId: 'node-d', reason: 'shutdown', leftAtMs: Date.now() });
    const again = await taskIn(taskId, 'dispatched', 2);
    expect(again.history.find((e) => e.type === 'TaskRequeued')).toMatchObject({ reason: 'infrastructure', attempt: 1 });
    const nodes = (await h.client.requestRaw('mesh.query.scheduler.nodes', {})) as {
      nodes: { nodeId: string; alive: boolean; left: boolean; lost: number; reliability: number }[];
    };
    expect(nodes.nodes.find((n) => n.nodeId === 'node-d')).toMatchObject({ alive: false, left: true, lost: 0, reliability: 1 });
  });

  it('cancels a pending task and a running one (naming its node)', async () => {
    await deploy('cancel-fn');
    await openWallet('cancel-w');
    const pending = await submit({ functionId: 'cancel-fn', walletId: 'cancel-w' });
    expect(await h.client.requestRaw('mesh.api.scheduler.cancel-task', { taskId: pending.taskId, reason: 'changed my mind' })).toEqual({
      taskId: pending.taskId,
      state: 'cancelled',
    });
    await setStanding('cancel-w', 'normal');
    const runningTask = await submit({ functionId: 'cancel-fn', walletId: 'cancel-w' });
    const t = await taskIn(runningTask.taskId, 'dispatched');
    await started(t);
    await taskIn(runningTask.taskId, 'running');
    expect(await h.client.requestRaw('mesh.api.scheduler.cancel-task', { taskId: runningTask.taskId })).toEqual({
      taskId: runningTask.taskId,
      state: 'cancelled',
      executionId: t.executionId,
      nodeId: t.nodeId,
    });
    await append(`execution-${t.executionId}`, ExecutionAborted, `${t.executionId}-aborted`, { ...execution(t), reason: 'cancelled', abortedAtMs: Date.now() });
    expect((await taskIn(pending.taskId, 'cancelled')).reason).toBe('changed my mind');
    expect(await dispatchesOf(pending.taskId)).toHaveLength(0);
    expect((await task(runningTask.taskId)).history.map((e) => e.type)).toEqual(['TaskSubmitted', 'TaskDispatched', 'TaskRunning', 'TaskCancelled']);
  });

  it('answers every command and query with a reply that matches its declared schema', async () => {
    // MeshClient.request validates the request before sending and the reply after receiving
    const fn = await h.client.request(deployFunctionRequest, {
      functionId: 'typed',
      image: 'mesh/task-base:latest',
      script: 'true',
      cpuInitialMillis: 100,
      memoryBytes: 64 * 1024 * 1024,
    });
    expect(fn.version).toBe(1);
    await openWallet('typed-w');
    const submitted = await h.client.request(submitTaskRequest, {
      functionId: 'typed',
      walletId: 'typed-w',
      input: { objectRef: { bucket: 'mesh-input-typed', key: 'in-1' } },
      priority: 9,
    });
    expect(submitted).toMatchObject({ state: 'pending', priority: 9, duplicate: false });
    expect(await h.client.request(taskRequest, { taskId: submitted.taskId })).toMatchObject({ state: 'pending', attempt: 1 });
    expect((await h.client.request(tasksRequest, { walletId: 'typed-w', state: 'pending', limit: 5 })).tasks).toHaveLength(1);
    expect((await h.client.request(functionsRequest, {})).functions.map((f) => f.functionId)).toContain('typed');
    expect((await h.client.request(functionRequest, { functionId: 'typed' })).version).toBe(1);
    expect((await h.client.request(poolsRequest, {})).wallets.find((w) => w.walletId === 'typed-w')).toMatchObject({
      pending: 1,
      dispatchable: false,
      standing: null,
    });
    expect((await h.client.request(nodesRequest, {})).nodes.length).toBeGreaterThanOrEqual(2);
    expect(await h.client.request(cancelTaskRequest, { taskId: submitted.taskId })).toEqual({ taskId: submitted.taskId, state: 'cancelled' });
  });

  it('rebuilds its pool and node view after a restart and never dispatches an attempt twice', async () => {
    await deploy('restart-fn');
    await openWallet('restart-w');
    await setStanding('restart-w', 'normal');
    const early = await submit({ functionId: 'restart-fn', walletId: 'restart-w' });
    await taskIn(early.taskId, 'dispatched');
    await setStanding('restart-w', 'overdrawn');
    const waiting: string[] = [];
    for (let i = 0; i < 3; i++) waiting.push((await submit({ functionId: 'restart-fn', walletId: 'restart-w', priority: i })).taskId);
    await h.scheduler.stop();
    // while the scheduler is down the wallet recovers (a deposit)
    await setStanding('restart-w', 'normal');
    h.scheduler = await h.startScheduler();
    const rebuilt = (await h.client.requestRaw('mesh.query.scheduler.pools', {})) as {
      dispatched: number;
      wallets: { walletId: string; pending: number; dispatched: number }[];
    };
    expect(rebuilt.wallets.find((w) => w.walletId === 'restart-w')).toMatchObject({ dispatched: 1 });
    // one warm container per (wallet, function) per node: `early` holds one live node, so only the
    // highest-priority waiting task gets the other; the next follows when `early` finishes
    await taskIn(waiting[2], 'dispatched');
    expect((await task(waiting[1])).state).toBe('pending');
    const e = await task(early.taskId);
    expect(e).toMatchObject({ state: 'dispatched', attempt: 1 });
    await started(e);
    await append(`execution-${e.executionId}`, ExecutionSucceeded, `${e.executionId}-succeeded`, {
      ...execution(e),
      outputRef: { bucket: 'mesh-output', key: 'k' },
      durationMs: 3,
    });
    await taskIn(early.taskId, 'succeeded');
    await taskIn(waiting[1], 'dispatched');
    expect((await task(waiting[0])).state).toBe('pending');
    expect(await Promise.all([early.taskId, ...waiting].map(async (id) => (await dispatchesOf(id)).length))).toEqual([1, 0, 1, 1]);
    const nodes = (await h.client.requestRaw('mesh.query.scheduler.nodes', {})) as { nodes: { nodeId: string; lost: number }[] };
    expect(nodes.nodes.find((n) => n.nodeId === 'node-c')?.lost).toBe(1); // reliability rebuilt from the log
  }, 60_000);
});
