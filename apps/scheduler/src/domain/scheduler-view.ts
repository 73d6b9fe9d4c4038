import assert from 'node:assert/strict';
import {
  OPERATOR_OWNER,
  functionSpecSchema,
  functionEvents,
  STANDINGS,
  TASK_STATES,
  nodeEvents,
  standingEvents,
  taskEvents,
  walletEvents,
  type FunctionEvent,
  type FunctionSpec,
  type NodeEvent,
  type NodeHeartbeat,
  type Standing,
  type StandingEvent,
  type TaskEvent,
  type TaskStateName,
  type WalletEvent,
} from '@mesh/contracts';
import { RecordReader, type SnapshotRecord } from '@mesh/eventstore/snapshot-records';
import { PendingPool } from './pending-pool';
import { containerKey, place, reliabilityOf, type Demand, type Placement, type PlacementNode } from './placement';

/**
 * The scheduler's in-memory view, folded from the log (functions, tasks, wallets, standings, nodes)
 * plus live heartbeats. Rebuilt from position 1 on every start, so nothing in it is a second source
 * of truth: the task streams decide, the view only proposes (a stale proposal fails its expected
 * version check). Pure: time comes in as arguments.
 */

export interface TaskSummary {
  taskId: string;
  functionId: string;
  walletId: string;
  /** The tenant that submitted it; undefined: the operator. */
  tenantId?: string;
  priority: number;
  maxAttempts: number;
  state: TaskStateName;
  attempt: number;
  submittedAtMs: number;
  /** Revision of the last task event folded (applying is idempotent by revision). */
  revision: number;
  seq: number;
  nodeId?: string;
  executionId?: string;
  /** When the current attempt was dispatched (state dispatched). */
  dispatchedAtMs?: number;
  /** Last time a heartbeat of its node listed the current execution (undefined: not since its dispatch or our start). */
  listedAtMs?: number;
  /** Resources reserved on nodeId while dispatched/running. */
  cpuMillis?: number;
  memoryBytes?: number;
  reason?: string;
}

export interface WalletInfo {
  walletId: string;
  kind?: 'user' | 'provider';
  policy?: 'greedy' | 'conservative';
  standing: Standing | null;
}

export interface NodeState extends PlacementNode {
  registered: boolean;
  left: boolean;
  /** The operator asked to drain it (NodeDrainRequested): no new task until it leaves; kept over a crash and re-registration, cleared by NodeLeft. */
  draining: boolean;
  alive: boolean;
  /**
   * Heard from since this view started (a heartbeat, or a registration newer than the start). A node
   * known only from an old log is not given new tasks until it beats, nor declared lost before the window.
   */
  heard: boolean;
  /** Last heartbeat, or when we started watching (registration seen / service start). */
  lastSeenAtMs: number;
  /** `registeredAtMs` of its latest NodeRegistered (a restored view derives lastSeenAtMs and heard from it as a replay would). */
  registeredAtMs?: number;
  lastHeartbeatAtMs?: number;
  /** Containers the last heartbeat counted (busy and idle). */
  runningContainers?: number;
  idleKeys: Set<string>;
  busyKeys: Map<string, number>;
  tasks: Set<string>;
  /**
   * Since when the node's heartbeats list its running executions without a break (undefined: its
   * latest beat did not, e.g. an older container-manager; such a node's executions are never suspected).
   */
  listsExecutionsSinceMs?: number;
  completed: number;
  lost: number;
}

/** The definitions of the events the view folds: its categories' events (`VIEW_CATEGORIES` of the engine). */
export const VIEW_EVENTS = [...functionEvents, ...taskEvents, ...walletEvents, ...standingEvents, ...nodeEvents] as const;
export type ViewEvent = FunctionEvent | TaskEvent | WalletEvent | StandingEvent | NodeEvent;
/** An event the view folds: recorded (from the log) or just written (read-your-writes), at its stream revision. */
export type FoldedEvent = ViewEvent & { stream: string; revision: number };
type FoldedTaskEvent = TaskEvent & { revision: number };

/** Bump when the snapshot records change: an older snapshot is then ignored (full replay), never misread. */
export const SCHEDULER_VIEW_SNAPSHOT_SCHEMA = 2; // 2: tasks carry their owner (tenantId)
/** Ids per pool / finished-list record (a record must stay well under a snapshot chunk). */
const IDS_PER_RECORD = 5_000;
const SNAPSHOT_WHAT = 'scheduler view snapshot';

/** Finished tasks kept in memory for the `tasks` query (the task query reads the stream instead). */
export const FINISHED_TASKS_IN_MEMORY = 100_000;

export interface DispatchCandidate {
  task: TaskSummary;
  fn: FunctionSpec;
  nodeId: string;
  warm: boolean;
}

/** Wallet dispatchable: standing normal, or low under the greedy policy; no standing yet = wait. */
export function isDispatchable(wallet: WalletInfo | undefined): boolean {
  if (!wallet || wallet.kind === 'provider') return false;
  return wallet.standing === 'normal' || (wallet.standing === 'low' && wallet.policy === 'greedy');
}

export class SchedulerView {
  readonly functions = new Map<string, FunctionSpec>();
  readonly tasks = new Map<string, TaskSummary>();
  readonly wallets = new Map<string, WalletInfo>();
  readonly nodes = new Map<string, NodeState>();
  readonly pool = new PendingPool();
  private readonly finished: string[] = [];
  private finishedHead = 0;
  private seq = 0;
  dispatched = 0;
  running = 0;

  /** `startedAtMs`: a node known from the log gets this much grace before its first heartbeat. */
  constructor(private readonly startedAtMs: number) {}

  apply(event: FoldedEvent): void {
    switch (event.type) {
      case 'FunctionDeployed': {
        const spec = event.data;
        const known = this.functions.get(spec.functionId);
        if (!known || known.version < spec.version) this.functions.set(spec.functionId, spec);
        return;
      }
      case 'TaskSubmitted':
      case 'TaskDispatched':
      case 'TaskRunning':
      case 'TaskRequeued':
      case 'TaskSucceeded':
      case 'TaskFailed':
      case 'TaskCancelled':
        this.applyTask(event);
        return;
      case 'WalletOpened': {
        const w = this.wallet(event.data.walletId);
        w.kind = event.data.kind;
        w.policy = event.data.policy;
        return;
      }
      case 'WalletPolicyChanged':
        this.wallet(event.data.walletId).policy = event.data.policy;
        return;
      case 'StandingChanged':
        this.wallet(event.data.walletId).standing = event.data.to;
        return;
      case 'NodeRegistered':
      case 'NodeDrainRequested':
      case 'NodeLeft':
        this.applyNode(event);
        return;
      default:
        return; // the other wallet events (money) do not matter here
    }
  }

  private wallet(walletId: string): WalletInfo {
    let w = this.wallets.get(walletId);
    if (!w) this.wallets.set(walletId, (w = { walletId, standing: null }));
    return w;
  }

  node(nodeId: string): NodeState {
    let n = this.nodes.get(nodeId);
    if (!n) {
      n = {
        nodeId,
        schedulable: false,
        registered: false,
        left: false,
        draining: false,
        alive: false,
        heard: false,
        cpuMillis: 1,
        memoryBytes: 0,
        reservedCpuMillis: 0,
        reservedMemoryBytes: 0,
        idleKeys: new Set(),
        busyKeys: new Map(),
        tasks: new Set(),
        completed: 0,
        lost: 0,
        reliability: 1,
        lastSeenAtMs: this.startedAtMs,
      };
      this.nodes.set(nodeId, n);
    }
    return n;
  }

  private refresh(n: NodeState): void {
    n.schedulable = n.registered && !n.left && !n.draining && n.alive && n.heard;
    n.reliability = reliabilityOf(n.completed, n.lost);
  }

  private applyNode(event: NodeEvent): void {
    if (event.type === 'NodeRegistered') {
      const d = event.data;
      const n = this.node(d.nodeId);
      n.registered = true;
      n.left = false;
      n.cpuMillis = d.cpuMillis;
      n.memoryBytes = d.memoryBytes;
      n.network = d.network ?? true;
      // A registration replayed from an old log must not count as a sign of life: it gets the
      // grace period from our start instead, and is lost if no heartbeat follows.
      n.lastSeenAtMs = Math.max(n.lastSeenAtMs, d.registeredAtMs, this.startedAtMs);
      n.heard ||= d.registeredAtMs >= this.startedAtMs;
      n.registeredAtMs = Math.max(n.registeredAtMs ?? d.registeredAtMs, d.registeredAtMs);
      n.alive = true;
      this.refresh(n);
    } else if (event.type === 'NodeDrainRequested') {
      const n = this.node(event.data.nodeId);
      n.draining = true;
      this.refresh(n);
    } else if (event.type === 'NodeLeft') {
      const n = this.node(event.data.nodeId);
      n.left = true;
      n.draining = false;
      n.alive = false;
      this.refresh(n);
    }
  }

  /** A live heartbeat (core NATS). Returns true when the node came (back) to life. */
  heartbeat(beat: NodeHeartbeat, nowMs: number): boolean {
    const n = this.node(beat.nodeId);
    const revived = !n.alive && n.registered && !n.left;
    n.lastSeenAtMs = nowMs;
    n.heard = true;
    n.lastHeartbeatAtMs = beat.atMs;
    n.runningContainers = beat.runningContainers;
    n.usedCpuMillis = beat.usedCpuMillis;
    n.usedMemoryBytes = beat.usedMemoryBytes;
    n.idleKeys = new Set(beat.idleContainers.map((c) => containerKey(c.walletId, c.functionId)));
    if (!n.left) n.alive = true;
    if (beat.runningExecutions) {
      n.listsExecutionsSinceMs ??= nowMs;
      for (const { taskId, executionId } of beat.runningExecutions) {
        const task = this.tasks.get(taskId);
        if (task?.executionId === executionId && task.nodeId === beat.nodeId) task.listedAtMs = nowMs;
      }
    } else {
      n.listsExecutionsSinceMs = undefined;
    }
    this.refresh(n);
    return revived;
  }

  /**
   * Tasks whose execution was lost: on a live node whose heartbeats list its executions, a task
   * believed running (or dispatched, once the node had listed it: it took the dispatch up) that the
   * heartbeats have not listed for longer than `lostAfterMs`. Silence is counted from the latest of:
   * its last listing, the node's first listing beat, and `notBeforeMs` (the scheduler's start), so a
   * restart or an upgraded node gets the whole window. A dispatch never taken up is the start
   * timeout's case (`unstartedDispatches`), a silent node the liveness check's.
   */
  lostExecutions(nowMs: number, lostAfterMs: number, notBeforeMs = 0): TaskSummary[] {
    const lost: TaskSummary[] = [];
    for (const node of this.nodes.values()) {
      if (!node.alive || node.left || node.listsExecutionsSinceMs === undefined) continue;
      for (const taskId of node.tasks) {
        const task = this.tasks.get(taskId);
        if (!task || !(task.state === 'running' || (task.state === 'dispatched' && task.listedAtMs !== undefined))) continue;
        // An attempt not listed yet is silent since its own dispatch, never since an older listing
        // of the node: a fresh attempt (running before the next beat lists it) is not lost.
        const silentSinceMs = Math.max(task.listedAtMs ?? task.dispatchedAtMs ?? nowMs, node.listsExecutionsSinceMs, notBeforeMs);
        if (nowMs - silentSinceMs > lostAfterMs) lost.push(task);
      }
    }
    return lost;
  }

  /** Marks nodes silent for longer than `lostAfterMs` as not alive; returns the ones newly lost. */
  expireNodes(nowMs: number, lostAfterMs: number): string[] {
    const lost: string[] = [];
    for (const n of this.nodes.values()) {
      if (n.alive && nowMs - n.lastSeenAtMs > lostAfterMs) {
        n.alive = false;
        this.refresh(n);
        lost.push(n.nodeId);
      }
    }
    return lost;
  }

  /**
   * Tasks dispatched more than `timeoutMs` ago (counted from `notBeforeMs` at the earliest, the
   * scheduler's own start) whose node has not reported the start: the node is alive (it beats) but
   * its container-manager never took the dispatch up.
   */
  unstartedDispatches(nowMs: number, timeoutMs: number, notBeforeMs = 0): TaskSummary[] {
    const stale: TaskSummary[] = [];
    for (const node of this.nodes.values()) {
      for (const taskId of node.tasks) {
        const task = this.tasks.get(taskId);
        if (task?.state === 'dispatched' && task.dispatchedAtMs !== undefined && nowMs - Math.max(task.dispatchedAtMs, notBeforeMs) > timeoutMs)
          stale.push(task);
      }
    }
    return stale;
  }

  /** Nodes that are not alive (lost or left) but still hold dispatched/running tasks to requeue. */
  deadNodesWithTasks(): NodeState[] {
    return [...this.nodes.values()].filter((n) => !n.alive && n.tasks.size > 0);
  }

  private applyTask(event: FoldedTaskEvent): void {
    if (event.type === 'TaskSubmitted') {
      const d = event.data;
      if (this.tasks.has(d.taskId)) return;
      const task: TaskSummary = {
        taskId: d.taskId,
        functionId: d.functionId,
        walletId: d.walletId,
        ...(d.tenantId !== undefined ? { tenantId: d.tenantId } : {}),
        priority: d.priority,
        maxAttempts: d.maxAttempts,
        state: 'pending',
        attempt: 1,
        submittedAtMs: d.submittedAtMs,
        revision: event.revision,
        seq: this.seq++,
      };
      this.tasks.set(task.taskId, task);
      this.pool.add({ taskId: task.taskId, walletId: task.walletId, priority: task.priority, seq: task.seq });
      return;
    }
    const task = this.tasks.get(event.data.taskId);
    if (!task || event.revision <= task.revision) return; // already folded (local apply, then the log echo)
    task.revision = event.revision;
    switch (event.type) {
      case 'TaskDispatched': {
        const d = event.data;
        const fn = d.function;
        this.pool.remove(task.taskId);
        this.leaveNode(task);
        task.state = 'dispatched';
        task.attempt = d.attempt;
        task.nodeId = d.nodeId;
        task.executionId = d.executionId;
        task.dispatchedAtMs = d.dispatchedAtMs;
        task.listedAtMs = undefined;
        task.cpuMillis = fn.cpuInitialMillis;
        task.memoryBytes = fn.memoryBytes;
        this.enterNode(task);
        this.dispatched++;
        return;
      }
      case 'TaskRunning':
        if (task.state === 'dispatched') {
          this.dispatched--;
          this.running++;
        }
        task.state = 'running';
        return;
      case 'TaskRequeued': {
        const reason = event.data.reason;
        if (reason === 'node-lost' && task.nodeId) this.node(task.nodeId).lost++;
        this.leaveNode(task);
        task.state = 'pending';
        task.nodeId = undefined;
        task.executionId = undefined;
        task.listedAtMs = undefined;
        task.attempt = event.data.attempt + 1;
        task.reason = reason;
        this.pool.add({ taskId: task.taskId, walletId: task.walletId, priority: task.priority, seq: task.seq });
        return;
      }
      case 'TaskSucceeded':
        this.finish(task, 'succeeded', undefined);
        return;
      case 'TaskFailed':
        this.finish(task, 'failed', event.data.reason);
        return;
      case 'TaskCancelled':
        this.finish(task, 'cancelled', event.data.reason);
        return;
    }
  }

  /** A terminal task event: the node's outcome counts (not for a cancel), the task leaves pool and node. */
  private finish(task: TaskSummary, state: 'succeeded' | 'failed' | 'cancelled', reason: string | undefined): void {
    if (task.nodeId && state !== 'cancelled') {
      const n = this.node(task.nodeId);
      if (reason?.startsWith('node-lost')) n.lost++;
      else n.completed++;
    }
    this.pool.remove(task.taskId);
    this.leaveNode(task);
    task.state = state;
    task.reason = reason;
    this.rememberFinished(task.taskId);
  }

  private enterNode(task: TaskSummary): void {
    assert(task.nodeId !== undefined, `task ${task.taskId} enters no node`);
    const n = this.node(task.nodeId);
    n.tasks.add(task.taskId);
    n.reservedCpuMillis += task.cpuMillis ?? 0;
    n.reservedMemoryBytes += task.memoryBytes ?? 0;
    const key = containerKey(task.walletId, task.functionId);
    n.busyKeys.set(key, (n.busyKeys.get(key) ?? 0) + 1);
  }

  /** Releases what the task held on its node (if it was dispatched/running) and updates the counters. */
  private leaveNode(task: TaskSummary): void {
    if (task.state === 'dispatched') this.dispatched--;
    if (task.state === 'running') this.running--;
    if ((task.state === 'dispatched' || task.state === 'running') && task.nodeId) {
      const n = this.node(task.nodeId);
      n.tasks.delete(task.taskId);
      n.reservedCpuMillis -= task.cpuMillis ?? 0;
      n.reservedMemoryBytes -= task.memoryBytes ?? 0;
      const key = containerKey(task.walletId, task.functionId);
      const busy = (n.busyKeys.get(key) ?? 0) - 1;
      if (busy > 0) n.busyKeys.set(key, busy);
      else n.busyKeys.delete(key);
      this.refresh(n);
    }
    if (task.state === 'dispatched' || task.state === 'running') {
      task.state = 'pending';
    }
  }

  private rememberFinished(taskId: string): void {
    this.finished.push(taskId);
    if (this.finished.length - this.finishedHead > FINISHED_TASKS_IN_MEMORY) {
      this.tasks.delete(this.finished[this.finishedHead++]);
      if (this.finishedHead > FINISHED_TASKS_IN_MEMORY) {
        this.finished.splice(0, this.finishedHead);
        this.finishedHead = 0;
      }
    }
  }

  demandOf(task: TaskSummary, fn: FunctionSpec): Demand {
    return { key: containerKey(task.walletId, task.functionId), cpuMillis: fn.cpuInitialMillis, memoryBytes: fn.memoryBytes, network: fn.network };
  }

  placeTask(task: TaskSummary): Placement & { fn?: FunctionSpec } {
    const fn = this.functions.get(task.functionId);
    if (!fn) return { ok: false, reason: 'no-nodes' };
    return { ...place(this.nodes.values(), this.demandOf(task, fn)), fn };
  }

  /**
   * Dispatch proposals in fair order: rounds over the dispatchable wallets with pending tasks
   * (round-robin), each offering its head task (priority, then FIFO). The caller must fold the
   * resulting TaskDispatched (or give up on it) before pulling the next proposal; a wallet whose
   * head cannot be placed, or whose proposal was not taken, waits until the next pass (strict FIFO
   * per wallet). Bounded by `budget` proposals.
   */
  *dispatchCandidates(budget: number): Generator<DispatchCandidate> {
    const blocked = new Set<string>();
    let offered = 0;
    for (;;) {
      let progress = false;
      for (const walletId of this.pool.walletsInTurn()) {
        if (offered >= budget) return;
        if (blocked.has(walletId) || !isDispatchable(this.wallets.get(walletId))) continue;
        const head = this.pool.head(walletId);
        const task = head && this.tasks.get(head.taskId);
        if (!task) {
          blocked.add(walletId);
          continue;
        }
        const placement = this.placeTask(task);
        if (!placement.ok || !placement.fn) {
          blocked.add(walletId);
          continue;
        }
        offered++;
        this.pool.served(walletId);
        yield { task, fn: placement.fn, nodeId: placement.nodeId, warm: placement.warm };
        if (this.pool.has(task.taskId))
          blocked.add(walletId); // not taken: do not offer it again now
        else progress = true;
      }
      if (!progress) return;
    }
  }

  /**
   * The view as snapshot records (docs/scheduler.md, "Start-up"): what the log made of it, without
   * what heartbeats said (a restored view hears the nodes afresh, as a replayed one does). Records:
   * `head`, `f` (function), `t` (task, in the view's order), `w` (wallet), `n` (node), `p` (a wallet's
   * pending queue, in round-robin order), `d` (ids of finished tasks, oldest first). Synchronous:
   * the caller takes it between two folds, at the position of the last one.
   */
  *snapshotRecords(): Generator<SnapshotRecord> {
    yield { k: 'head', seq: this.seq };
    for (const spec of this.functions.values()) yield { k: 'f', spec };
    for (const t of this.tasks.values()) {
      const { listedAtMs: _listed, ...logged } = t;
      void _listed; // heard from heartbeats, not from the log
      yield { k: 't', ...logged };
    }
    for (const w of this.wallets.values()) yield { k: 'w', ...w };
    for (const n of this.nodes.values()) {
      const { nodeId, registered, left, draining, network, cpuMillis, memoryBytes, completed, lost, registeredAtMs } = n;
      yield { k: 'n', nodeId, registered, left, draining, network, cpuMillis, memoryBytes, completed, lost, registeredAtMs };
    }
    for (const [walletId] of this.pool.wallets()) {
      const entries = [...this.pool.entriesOf(walletId)].sort((a, b) => b.priority - a.priority || a.seq - b.seq).map((e) => e.taskId);
      for (let i = 0; i < entries.length; i += IDS_PER_RECORD) yield { k: 'p', walletId, taskIds: entries.slice(i, i + IDS_PER_RECORD) };
    }
    const finished = this.finished.slice(this.finishedHead);
    for (let i = 0; i < finished.length; i += IDS_PER_RECORD) yield { k: 'd', taskIds: finished.slice(i, i + IDS_PER_RECORD) };
  }

  /**
   * A view rebuilt from `snapshotRecords()`, as it would be after replaying the log up to the
   * snapshot's position in a view started at `startedAtMs`. Throws (naming the record and field) on
   * anything malformed; the caller then replays the whole log.
   */
  static restore(records: unknown[], startedAtMs: number): SchedulerView {
    const view = new SchedulerView(startedAtMs);
    const head = RecordReader.of(records[0], SNAPSHOT_WHAT);
    if (head.kind !== 'head') throw head.error('k', 'must be head in the first record');
    view.seq = head.int('seq');
    for (const value of records.slice(1)) {
      const r = RecordReader.of(value, SNAPSHOT_WHAT);
      switch (r.kind) {
        case 'f': {
          const spec = functionSpecSchema.safeParse(r.record.spec);
          if (!spec.success) throw r.error('spec', `must be a function spec: ${spec.error.issues[0]?.message}`);
          view.functions.set(spec.data.functionId, spec.data);
          break;
        }
        case 't':
          view.restoreTask(r);
          break;
        case 'w': {
          const walletId = r.str('walletId');
          const kind = r.has('kind') ? r.oneOf('kind', ['user', 'provider'] as const) : undefined;
          const policy = r.has('policy') ? r.oneOf('policy', ['greedy', 'conservative'] as const) : undefined;
          const standing = r.has('standing') ? r.oneOf('standing', STANDINGS) : null;
          view.wallets.set(walletId, { walletId, ...(kind ? { kind } : {}), ...(policy ? { policy } : {}), standing });
          break;
        }
        case 'n': {
          const n = view.node(r.str('nodeId'));
          n.registered = r.bool('registered');
          n.left = r.bool('left');
          // Absent in snapshots written before drains and network-less nodes existed.
          n.draining = r.has('draining') ? r.bool('draining') : false;
          n.network = r.has('network') ? r.bool('network') : undefined;
          n.cpuMillis = r.int('cpuMillis');
          n.memoryBytes = r.int('memoryBytes');
          n.completed = r.int('completed');
          n.lost = r.int('lost');
          n.registeredAtMs = r.optInt('registeredAtMs');
          // As applyNode leaves a node replayed from the log: alive once registered (until it left),
          // heard only if registered since this view started, and the grace period counted from it.
          n.alive = n.registered && !n.left;
          if (n.registeredAtMs !== undefined) {
            n.lastSeenAtMs = Math.max(n.lastSeenAtMs, n.registeredAtMs);
            n.heard = n.registeredAtMs >= startedAtMs;
          }
          view.refresh(n);
          break;
        }
        case 'p':
          for (const taskId of r.strings('taskIds')) {
            const task = view.tasks.get(taskId);
            if (task?.state !== 'pending') throw r.error('taskIds', `must name pending tasks (${taskId} is not)`);
            view.pool.add({ taskId, walletId: task.walletId, priority: task.priority, seq: task.seq });
          }
          break;
        case 'd':
          view.finished.push(...r.strings('taskIds'));
          break;
        default:
          throw r.error('k', 'is an unknown record kind');
      }
    }
    // What tasks hold on their nodes follows from the tasks themselves.
    for (const task of view.tasks.values()) {
      if (task.state !== 'dispatched' && task.state !== 'running') continue;
      view.enterNode(task);
      if (task.state === 'dispatched') view.dispatched++;
      else view.running++;
    }
    for (const n of view.nodes.values()) view.refresh(n);
    return view;
  }

  private restoreTask(r: RecordReader): void {
    const task: TaskSummary = {
      taskId: r.str('taskId'),
      functionId: r.str('functionId'),
      walletId: r.str('walletId'),
      priority: r.int('priority'),
      maxAttempts: r.int('maxAttempts'),
      state: r.oneOf('state', TASK_STATES),
      attempt: r.int('attempt'),
      submittedAtMs: r.int('submittedAtMs'),
      revision: r.int('revision'),
      seq: r.int('seq'),
    };
    const nodeId = r.optStr('nodeId');
    const executionId = r.optStr('executionId');
    const dispatchedAtMs = r.optInt('dispatchedAtMs');
    const cpuMillis = r.optInt('cpuMillis');
    const memoryBytes = r.optInt('memoryBytes');
    const reason = r.optStr('reason');
    const tenantId = r.optStr('tenantId');
    if (tenantId !== undefined) task.tenantId = tenantId;
    if (nodeId !== undefined) task.nodeId = nodeId;
    if (executionId !== undefined) task.executionId = executionId;
    if (dispatchedAtMs !== undefined) task.dispatchedAtMs = dispatchedAtMs;
    if (cpuMillis !== undefined) task.cpuMillis = cpuMillis;
    if (memoryBytes !== undefined) task.memoryBytes = memoryBytes;
    if (reason !== undefined) task.reason = reason;
    if ((task.state === 'dispatched' || task.state === 'running') && task.nodeId === undefined) throw r.error('nodeId', `is required for a ${task.state} task`);
    this.tasks.set(task.taskId, task);
  }

  /** Tasks for the `tasks` query, newest first; `owner` (a tenant id, or `operator`) keeps only the tasks it submitted. */
  listTasks(filter: { walletId?: string; state?: TaskStateName; owner?: string }, limit: number): { tasks: TaskSummary[]; total: number } {
    const out: TaskSummary[] = [];
    let total = 0;
    const all = [...this.tasks.values()];
    for (let i = all.length - 1; i >= 0; i--) {
      const t = all[i];
      if (filter.walletId && t.walletId !== filter.walletId) continue;
      if (filter.state && t.state !== filter.state) continue;
      if (filter.owner !== undefined && (t.tenantId ?? OPERATOR_OWNER) !== filter.owner) continue;
      total++;
      if (out.length < limit) out.push(t);
    }
    return { tasks: out, total };
  }
}

/**
 * Dispatches in memory only (no log): folds a TaskDispatched for each proposal. Used by the specs
 * and the placement benchmark; the service does the same through the task streams.
 */
export function dispatchInMemory(view: SchedulerView, budget: number, nowMs: number): DispatchCandidate[] {
  const done: DispatchCandidate[] = [];
  for (const candidate of view.dispatchCandidates(budget)) {
    const { task, fn, nodeId } = candidate;
    view.apply({
      type: 'TaskDispatched',
      stream: `task-${task.taskId}`,
      revision: task.revision + 1,
      data: {
        taskId: task.taskId,
        functionId: task.functionId,
        walletId: task.walletId,
        attempt: task.attempt,
        executionId: `${task.taskId}-${task.attempt}`,
        nodeId,
        function: fn,
        input: { inline: '' },
        dispatchedAtMs: nowMs,
      },
    });
    done.push(candidate);
  }
  return done;
}
