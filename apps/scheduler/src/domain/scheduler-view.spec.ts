import fc from 'fast-check';
import {
  NodeDrainRequested,
  NodeLeft,
  NodeRegistered,
  TaskDispatched,
  TaskRequeued,
  TaskRunning,
  TaskSucceeded,
  type Standing,
  type TaskEvent,
} from '@mesh/contracts';
import { SchedulerView, dispatchInMemory, isDispatchable, type FoldedEvent, type ViewEvent } from './scheduler-view';
import { decided, fnSpec, folded, functionDeployed, nodeRegistered, standingChanged, taskSubmitted, walletOpened } from '../../test/fixtures';

const GiB = 1024 ** 3;
let revisions = new Map<string, number>();
/** `event` appended to `stream`: the next revision of that stream. */
const ev = (stream: string, event: ViewEvent): FoldedEvent => {
  const revision = (revisions.get(stream) ?? -1) + 1;
  revisions.set(stream, revision);
  return folded(stream, revision, event);
};
const deployed = (spec = fnSpec()) => ev(`function-${spec.functionId}`, functionDeployed(spec));
const opened = (walletId: string, policy: 'greedy' | 'conservative' = 'greedy') => ev(`wallet-${walletId}`, walletOpened(walletId, policy));
const standing = (walletId: string, to: Standing) => ev(`standing-${walletId}`, standingChanged(walletId, to));
const node = (nodeId: string, cpuMillis = 4000, memoryBytes = 8 * GiB) => ev(`node-${nodeId}`, nodeRegistered(nodeId, cpuMillis, memoryBytes));
const submit = (taskId: string, walletId: string, functionId = 'fn', priority = 0) =>
  ev(`task-${taskId}`, taskSubmitted({ taskId, walletId, functionId, priority }));
/** The next event of a task stream the view already knows (its revision follows the view's). */
const taskEvent = (view: SchedulerView, event: TaskEvent): FoldedEvent =>
  folded(`task-${event.data.taskId}`, view.tasks.get(event.data.taskId)!.revision + 1, event);
const ref = (taskId: string) => ({ taskId, functionId: 'fn', walletId: 'w1' });
const succeeded = (taskId: string) =>
  decided(TaskSucceeded, { ...ref(taskId), attempt: 1, executionId: `${taskId}-1`, outputRef: { bucket: 'b', key: 'k' }, durationMs: 1 });

function viewOf(events: FoldedEvent[]): SchedulerView {
  const view = new SchedulerView(0);
  for (const e of events) view.apply(e);
  return view;
}

beforeEach(() => (revisions = new Map()));

/** A heartbeat of a 4-core, 8 GiB node at `atMs`, listing `runningExecutions` (undefined: a node that does not list them). */
const beatOn = (view: SchedulerView) => (nodeId: string, atMs: number, runningExecutions?: { taskId: string; executionId: string }[]) =>
  view.heartbeat(
    { nodeId, atMs, cpuMillis: 4000, memoryBytes: 8 * GiB, usedCpuMillis: 0, usedMemoryBytes: 0, runningContainers: 0, idleContainers: [], runningExecutions },
    atMs,
  );

describe('scheduler view: gating by standing', () => {
  it('dispatchable iff normal, or low under greedy; no standing yet = wait; provider wallets never', () => {
    expect(isDispatchable({ walletId: 'w', kind: 'user', policy: 'greedy', standing: null })).toBe(false);
    expect(isDispatchable({ walletId: 'w', kind: 'user', policy: 'greedy', standing: 'normal' })).toBe(true);
    expect(isDispatchable({ walletId: 'w', kind: 'user', policy: 'greedy', standing: 'low' })).toBe(true);
    expect(isDispatchable({ walletId: 'w', kind: 'user', policy: 'conservative', standing: 'low' })).toBe(false);
    expect(isDispatchable({ walletId: 'w', kind: 'user', policy: 'greedy', standing: 'overdrawn' })).toBe(false);
    expect(isDispatchable({ walletId: 'w', kind: 'user', policy: 'greedy', standing: 'suspended' })).toBe(false);
    expect(isDispatchable({ walletId: 'w', kind: 'provider', policy: 'greedy', standing: 'normal' })).toBe(false);
  });
  it('holds the tasks of an overdrawn wallet and dispatches them once it recovers', () => {
    const view = viewOf([deployed(), node('n1'), opened('w1'), standing('w1', 'overdrawn'), submit('t1', 'w1')]);
    expect(dispatchInMemory(view, 10, 5)).toEqual([]);
    view.apply(standing('w1', 'normal'));
    expect(dispatchInMemory(view, 10, 5).map((c) => c.task.taskId)).toEqual(['t1']);
    expect(view.tasks.get('t1')).toMatchObject({ state: 'dispatched', nodeId: 'n1', attempt: 1 });
  });
});

describe('scheduler view: capacity, containers, fairness', () => {
  const base = () => [
    deployed(),
    deployed(fnSpec({ functionId: 'g' })),
    node('n1'),
    node('n2'),
    opened('w1'),
    standing('w1', 'normal'),
    opened('w2'),
    standing('w2', 'normal'),
  ];

  it('reserves initial CPU and memory and releases them when the task ends', () => {
    const view = viewOf([...base(), submit('t1', 'w1')]);
    dispatchInMemory(view, 10, 5);
    const n = view.nodes.get(view.tasks.get('t1')!.nodeId!)!;
    expect([n.reservedCpuMillis, n.reservedMemoryBytes]).toEqual([1000, 256 * 1024 * 1024]);
    view.apply(taskEvent(view, succeeded('t1')));
    expect([n.reservedCpuMillis, n.reservedMemoryBytes, n.completed, view.dispatched]).toEqual([0, 0, 1, 0]);
  });
  it('one busy container per (wallet, function) per node: the third task of a pair waits for a free one', () => {
    const view = viewOf([...base(), submit('a', 'w1'), submit('b', 'w1'), submit('c', 'w1'), submit('d', 'w1', 'g')]);
    const placed = dispatchInMemory(view, 10, 5);
    // a and b go to different nodes; c (same pair) waits, and so does d behind it (FIFO per wallet)
    expect(placed.map((c) => c.task.taskId)).toEqual(['a', 'b']);
    expect(new Set(placed.map((c) => c.nodeId)).size).toBe(2);
    view.apply(taskEvent(view, succeeded('a')));
    expect(dispatchInMemory(view, 10, 5).map((c) => c.task.taskId)).toEqual(['c', 'd']);
  });
  it('alternates wallets (round-robin) and stops at the capacity of the nodes', () => {
    const events = [...base()];
    for (let i = 0; i < 6; i++) events.push(submit(`x${i}`, 'w1', i % 2 ? 'fn' : 'g'));
    events.push(submit('y0', 'w2'));
    const view = viewOf(events);
    const placed = dispatchInMemory(view, 100, 5).map((c) => c.task.taskId);
    expect(placed.slice(0, 2).sort()).toEqual(['x0', 'y0']);
    // two nodes x (w1,fn) and (w1,g) = 4 containers for w1, one for w2; capacity 4 cores each
    expect(placed).toHaveLength(5);
  });
  it('requeue on a lost node releases the node, counts the loss and returns the task to the pool', () => {
    const view = viewOf([...base(), submit('t1', 'w1')]);
    dispatchInMemory(view, 10, 5);
    const nodeId = view.tasks.get('t1')!.nodeId!;
    expect(view.expireNodes(20_000, 10_000).sort()).toEqual(['n1', 'n2']);
    expect(view.deadNodesWithTasks().map((n) => n.nodeId)).toEqual([nodeId]);
    view.apply(taskEvent(view, decided(TaskRequeued, { ...ref('t1'), attempt: 1, reason: 'node-lost', detail: 'silent' })));
    const n = view.nodes.get(nodeId)!;
    expect([n.tasks.size, n.lost, n.reliability, view.pool.size]).toEqual([0, 1, 0.5, 1]);
    expect(view.tasks.get('t1')).toMatchObject({ state: 'pending', attempt: 2 });
  });
  it('a heartbeat revives a lost node and carries its idle warm containers', () => {
    const view = viewOf([...base(), submit('t1', 'w1')]);
    view.expireNodes(20_000, 10_000);
    expect(dispatchInMemory(view, 10, 5)).toEqual([]);
    const revived = view.heartbeat(
      {
        nodeId: 'n2',
        atMs: 1,
        cpuMillis: 4000,
        memoryBytes: 8 * GiB,
        usedCpuMillis: 0,
        usedMemoryBytes: 0,
        runningContainers: 1,
        idleContainers: [{ walletId: 'w1', functionId: 'fn', containerId: 'c1' }],
      },
      21_000,
    );
    expect(revived).toBe(true);
    expect(dispatchInMemory(view, 10, 5)).toMatchObject([{ nodeId: 'n2', warm: true }]);
  });
  it('after a restart, a node known only from the log gets no task before its first heartbeat', () => {
    const view = new SchedulerView(50_000);
    for (const e of [...base(), submit('t1', 'w1')]) view.apply(e);
    expect(dispatchInMemory(view, 10, 5)).toEqual([]);
    expect(view.expireNodes(55_000, 10_000)).toEqual([]); // not lost within the window either
    view.heartbeat(
      { nodeId: 'n1', atMs: 1, cpuMillis: 4000, memoryBytes: 8 * GiB, usedCpuMillis: 0, usedMemoryBytes: 0, runningContainers: 0, idleContainers: [] },
      55_000,
    );
    expect(dispatchInMemory(view, 10, 5)).toMatchObject([{ nodeId: 'n1' }]);
    expect(view.expireNodes(61_000, 10_000)).toEqual(['n2']);
  });
  it('lists dispatches not started within the timeout (running ones and fresh ones are not listed)', () => {
    const view = viewOf([...base(), submit('t1', 'w1'), submit('t2', 'w2')]);
    dispatchInMemory(view, 10, 1_000);
    view.apply(
      taskEvent(view, decided(TaskRunning, { ...ref('t2'), attempt: 1, executionId: 't2-1', nodeId: view.tasks.get('t2')!.nodeId!, containerId: 'c2' })),
    );
    expect(view.unstartedDispatches(100_000, 120_000)).toEqual([]);
    expect(view.unstartedDispatches(121_001, 120_000).map((t) => [t.taskId, t.executionId])).toEqual([['t1', 't1-1']]);
    // After a restart at 100 s, a dispatch from before gets the whole timeout from the restart.
    expect(view.unstartedDispatches(121_001, 120_000, 100_000)).toEqual([]);
    expect(view.unstartedDispatches(220_001, 120_000, 100_000).map((t) => t.taskId)).toEqual(['t1']);
  });
  it('lists executions a live node has stopped listing for longer than the window, counted from its last listing', () => {
    const view = viewOf([...base(), submit('t1', 'w1'), submit('t2', 'w2')]);
    dispatchInMemory(view, 10, 1_000);
    const t1 = view.tasks.get('t1')!;
    const t2 = view.tasks.get('t2')!;
    view.apply(taskEvent(view, decided(TaskRunning, { ...ref('t1'), attempt: 1, executionId: 't1-1', nodeId: t1.nodeId!, containerId: 'c1' })));
    const beat = beatOn(view);
    // Nodes that do not list their executions (older versions) are never suspected.
    for (const n of ['n1', 'n2']) beat(n, 2_000);
    expect(view.lostExecutions(1_000_000, 30_000)).toEqual([]);
    // Both nodes list: t1 (running) is listed at 3 s, then no more; t2 (dispatched) is never listed: the start timeout's case.
    beat(t1.nodeId!, 3_000, [{ taskId: 't1', executionId: 't1-1' }]);
    if (t2.nodeId !== t1.nodeId) beat(t2.nodeId!, 3_000, []);
    beat(t1.nodeId!, 4_000, []);
    expect(view.lostExecutions(33_000, 30_000)).toEqual([]);
    expect(view.lostExecutions(33_001, 30_000).map((t) => t.taskId)).toEqual(['t1']);
    // After a scheduler restart at 20 s the whole window counts from there.
    expect(view.lostExecutions(50_000, 30_000, 20_000)).toEqual([]);
    // Listed again: not lost; a dead node's tasks are the liveness check's, not this one's.
    beat(t1.nodeId!, 40_000, [{ taskId: 't1', executionId: 't1-1' }]);
    expect(view.lostExecutions(60_000, 30_000)).toEqual([]);
    view.expireNodes(200_000, 10_000);
    expect(view.lostExecutions(200_000, 30_000)).toEqual([]);
  });
  it('does not suspect a new attempt that no beat has listed yet: its silence counts from its dispatch (found by the chaos soak)', () => {
    const view = viewOf([...base(), submit('t1', 'w1')]);
    const beat = beatOn(view);
    // The nodes have listed their executions for a long time before this dispatch.
    for (const n of ['n1', 'n2']) beat(n, 1_000, []);
    dispatchInMemory(view, 10, 100_000);
    const t1 = view.tasks.get('t1')!;
    view.apply(taskEvent(view, decided(TaskRunning, { ...ref('t1'), attempt: 1, executionId: 't1-1', nodeId: t1.nodeId!, containerId: 'c1' })));
    expect(view.lostExecutions(100_500, 30_000)).toEqual([]);
    expect(view.lostExecutions(130_000, 30_000)).toEqual([]);
    // Never listed at all within the window after its dispatch: lost.
    expect(view.lostExecutions(130_001, 30_000).map((t) => t.taskId)).toEqual(['t1']);
  });
  it('folding the same event twice changes nothing (local apply, then the log echo)', () => {
    const events = [...base(), submit('t1', 'w1')];
    const view = viewOf(events);
    const [c] = dispatchInMemory(view, 10, 5);
    const echo = folded(
      'task-t1',
      1,
      decided(TaskDispatched, {
        ...ref('t1'),
        attempt: 1,
        executionId: 't1-1',
        nodeId: c.nodeId,
        function: fnSpec(),
        input: { inline: '' },
        dispatchedAtMs: 5,
      }),
    );
    view.apply(echo);
    for (const e of events) view.apply(e);
    expect([view.dispatched, view.pool.size, view.nodes.get(c.nodeId)!.reservedCpuMillis]).toEqual([1, 0, 1000]);
  });
});

describe('scheduler view: invariants under random load (property)', () => {
  const scenario = fc.record({
    nodes: fc.array(fc.record({ cpuMillis: fc.integer({ min: 500, max: 8000 }), memGiB: fc.integer({ min: 1, max: 8 }) }), { minLength: 1, maxLength: 6 }),
    standings: fc.array(fc.constantFrom('normal', 'low', 'overdrawn', 'suspended', null), { minLength: 1, maxLength: 5 }),
    policies: fc.array(fc.constantFrom('greedy', 'conservative'), { minLength: 5, maxLength: 5 }),
    tasks: fc.array(fc.record({ wallet: fc.nat(4), fn: fc.nat(2), priority: fc.integer({ min: 0, max: 9 }) }), { maxLength: 60 }),
    cpu: fc.array(fc.integer({ min: 100, max: 3000 }), { minLength: 3, maxLength: 3 }),
  });

  it('never overcommits a node, never runs two tasks of one (wallet, function) on a node, never dispatches a gated wallet, keeps FIFO by priority per wallet', () => {
    fc.assert(
      fc.property(scenario, (s) => {
        revisions = new Map();
        const events: FoldedEvent[] = [];
        s.cpu.forEach((cpu, f) =>
          events.push(deployed(fnSpec({ functionId: `f${f}`, cpuInitialMillis: cpu, cpuMinMillis: 100, memoryBytes: 512 * 1024 * 1024 }))),
        );
        s.nodes.forEach((n, i) => events.push(node(`n${i}`, n.cpuMillis, n.memGiB * GiB)));
        s.standings.forEach((standingTo, w) => {
          events.push(opened(`w${w}`, s.policies[w]));
          if (standingTo) events.push(standing(`w${w}`, standingTo));
        });
        s.tasks.forEach((t, i) => events.push(submit(`t${i}`, `w${t.wallet % s.standings.length}`, `f${t.fn}`, t.priority)));
        const view = viewOf(events);
        const placed = dispatchInMemory(view, 1000, 1);
        for (const n of view.nodes.values()) {
          expect(n.reservedCpuMillis).toBeLessThanOrEqual(n.cpuMillis);
          expect(n.reservedMemoryBytes).toBeLessThanOrEqual(n.memoryBytes);
          for (const count of n.busyKeys.values()) expect(count).toBe(1);
        }
        for (const c of placed) expect(isDispatchable(view.wallets.get(c.task.walletId))).toBe(true);
        // within a wallet, dispatch order follows (priority desc, submission asc)
        const byWallet = new Map<string, { priority: number; seq: number }[]>();
        for (const c of placed) byWallet.set(c.task.walletId, [...(byWallet.get(c.task.walletId) ?? []), { priority: c.task.priority, seq: c.task.seq }]);
        for (const order of byWallet.values()) {
          for (let i = 1; i < order.length; i++) {
            const [a, b] = [order[i - 1], order[i]];
            expect(a.priority > b.priority || (a.priority === b.priority && a.seq < b.seq)).toBe(true);
          }
        }
        // every task is in exactly one place: the pool or a node
        const onNodes = [...view.nodes.values()].reduce((sum, n) => sum + n.tasks.size, 0);
        expect(onNodes + view.pool.size).toBe(s.tasks.length);
        expect(view.dispatched).toBe(placed.length);
      }),
      { numRuns: 200 },
    );
  });
});

describe('scheduler view: task owners', () => {
  const owned = (taskId: string, tenantId?: string) => ev(`task-${taskId}`, taskSubmitted({ taskId, walletId: 'w1', functionId: 'fn', tenantId }));
  it("lists a tenant's own tasks only (the operator's tasks name no tenant), and everything without an owner filter", () => {
    const view = viewOf([owned('op-1'), owned('a-1', 'alice'), owned('b-1', 'bob'), owned('a-2', 'alice')]);
    expect(view.listTasks({ owner: 'alice' }, 10).tasks.map((t) => t.taskId)).toEqual(['a-2', 'a-1']);
    expect(view.listTasks({ owner: 'operator' }, 10).tasks.map((t) => t.taskId)).toEqual(['op-1']);
    expect(view.listTasks({ owner: 'alice' }, 1)).toMatchObject({ total: 2, tasks: [{ taskId: 'a-2' }] });
    expect(view.listTasks({}, 10).total).toBe(4);
  });
  it('keeps the owners through a snapshot', () => {
    const view = viewOf([owned('op-1'), owned('a-1', 'alice')]);
    const restored = SchedulerView.restore([...view.snapshotRecords()], 0);
    expect(restored.tasks.get('a-1')?.tenantId).toBe('alice');
    expect(restored.tasks.get('op-1')?.tenantId).toBeUndefined();
  });
});

describe('scheduler view: drained and network-less nodes', () => {
  const drainRequested = (nodeId: string) => ev(`node-${nodeId}`, decided(NodeDrainRequested, { nodeId, requestedAtMs: 5 }));
  const leftDrained = (nodeId: string) => ev(`node-${nodeId}`, decided(NodeLeft, { nodeId, reason: 'drained', leftAtMs: 9 }));
  const withoutNetwork = (nodeId: string) =>
    ev(`node-${nodeId}`, decided(NodeRegistered, { nodeId, cpuMillis: 4000, memoryBytes: 8 * GiB, labels: {}, registeredAtMs: 0, network: false }));

  it('places nothing new on a draining node; its running task stays; the node is ready again once it left and registered', () => {
    const view = viewOf([deployed(), deployed(fnSpec({ functionId: 'g' })), node('n1'), opened('w1'), standing('w1', 'normal'), submit('t1', 'w1')]);
    expect(dispatchInMemory(view, 10, 5)).toMatchObject([{ nodeId: 'n1' }]);
    view.apply(drainRequested('n1'));
    view.apply(submit('t2', 'w1', 'g'));
    expect(dispatchInMemory(view, 10, 5)).toEqual([]);
    expect(view.placeTask(view.tasks.get('t2')!)).toMatchObject({ ok: false, reason: 'no-nodes' });
    expect(view.nodes.get('n1')).toMatchObject({ draining: true, schedulable: false, alive: true });
    expect(view.tasks.get('t1')).toMatchObject({ state: 'dispatched', nodeId: 'n1' });
    // a snapshot keeps the drain
    expect(SchedulerView.restore([...view.snapshotRecords()], 0).nodes.get('n1')?.draining).toBe(true);
    view.apply(leftDrained('n1'));
    expect(view.nodes.get('n1')).toMatchObject({ draining: false, left: true });
    expect(view.deadNodesWithTasks().map((n) => n.nodeId)).toEqual(['n1']); // requeued (infrastructure), no reliability loss
    view.apply(node('n1'));
    expect(view.nodes.get('n1')).toMatchObject({ draining: false, left: false, schedulable: true });
  });
  it('places a network-enabled function only on a node that offers network', () => {
    const view = viewOf([deployed(fnSpec({ network: true })), withoutNetwork('n1'), opened('w1'), standing('w1', 'normal'), submit('t1', 'w1')]);
    expect(dispatchInMemory(view, 10, 5)).toEqual([]);
    expect(view.placeTask(view.tasks.get('t1')!)).toMatchObject({ ok: false, reason: 'no-network-node' });
    expect(SchedulerView.restore([...view.snapshotRecords()], 0).nodes.get('n1')?.network).toBe(false);
    view.apply(node('n2'));
    expect(dispatchInMemory(view, 10, 5)).toMatchObject([{ nodeId: 'n2' }]);
  });
});
