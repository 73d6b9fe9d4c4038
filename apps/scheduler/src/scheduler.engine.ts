import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { Inject, Injectable, Logger, Optional, type OnApplicationBootstrap, type OnModuleDestroy } from '@nestjs/common';
import type { NatsConnection, Subscription as NatsSubscription } from 'nats';
import {
  DomainError,
  ExecutionStarted,
  HEARTBEAT_PREFIX,
  LIMITS,
  PricePlanSet,
  TaskCancelled,
  TaskSubmitted,
  WalletOpened,
  assertOwns,
  executionEvents,
  isEvent,
  isEventOf,
  nodeHeartbeatSchema,
  pricePlanStream,
  ownerOf,
  streamName,
  type Caller,
  type FunctionSpec,
  type RecordedEvent,
  type RecordedExecutionEvent,
  type ReplyData,
  type RequestData,
  type TaskDetail,
  type TaskInput,
  type cancelTaskRequest,
  type deployFunctionRequest,
  type nodesRequest,
  type poolsRequest,
  type submitTaskRequest,
  type taskOutputRequest,
  type tasksRequest,
} from '@mesh/contracts';
import type { EventStore, Subscription } from '@mesh/eventstore/port';
import { KvSnapshotStore, SnapshotSchedule, encodeSnapshot, type SnapshotStore } from '@mesh/eventstore/snapshot-store';
import { ConcurrencyError } from '@mesh/eventstore/errors';
import { messageOf } from '@mesh/common';
import { ALWAYS_LEADER, EVENT_STORE, LEADERSHIP, NATS_CONNECTION, SERVICE_CONFIG, WalletOwners, decodeJson, type Leadership } from '@mesh/runtime';
import type { ConfigOf } from '@mesh/config';
import type { SchedulerEnv } from './config';
import { assertInputAllowed, assertMayUseFunction, assertOwnsTask, mayUseFunction } from './domain/access';
import { specFromRequest } from './domain/function-decider';
import { freeCpuMillis, freeMemoryBytes } from './domain/placement';
import { SCHEDULER_VIEW_SNAPSHOT_SCHEMA, SchedulerView, VIEW_EVENTS, isDispatchable, type FoldedEvent, type ViewEvent } from './domain/scheduler-view';
import type { TaskCommand } from './domain/task-decider';
import { FunctionHandler } from './function.handler';
import { TaskHandler, dropUndefined, type TaskResult } from './task.handler';
import { TaskObjects } from './task-objects';
import type { CommandResult } from '@mesh/eventstore/decider';

type Config = ConfigOf<typeof SchedulerEnv>;

/** The categories the view folds (execution results arrive through the durable consumer instead). */
export const VIEW_CATEGORIES = ['function', 'task', 'wallet', 'standing', 'node'];
/** The engine of the scheduler running in this process, for the health reply (main.ts). */
export const runningEngines = new Set<SchedulerEngine>();
/** Lost executions resolved per liveness check (each reads a stream and writes); the rest wait for the next check. */
const LOST_EXECUTIONS_PER_CHECK = 256;

/**
 * The view at start: restored from the snapshot under `key` when usable (otherwise why not is
 * logged and the view starts empty, for a full replay), with the log position it covers.
 */
export async function restoreSchedulerView(
  snapshots: SnapshotStore | undefined,
  key: string,
  startedAtMs: number,
  log: Pick<Logger, 'warn'>,
): Promise<{ view: SchedulerView; position: bigint; from: 'snapshot' | 'log' }> {
  if (snapshots) {
    const loaded = await snapshots
      .load(key, SCHEDULER_VIEW_SNAPSHOT_SCHEMA)
      .catch((err: unknown) => ({ ok: false as const, reason: `cannot read it: ${messageOf(err)}` }));
    if (loaded.ok) {
      try {
        return { view: SchedulerView.restore(loaded.snapshot.records, startedAtMs), position: loaded.snapshot.position, from: 'snapshot' };
      } catch (err) {
        log.warn(`snapshot ${key} not used (${messageOf(err)}): replaying the whole log`);
      }
    } else log.warn(`snapshot ${key} not used (${loaded.reason}): replaying the whole log`);
  }
  return { view: new SchedulerView(startedAtMs), position: 0n, from: 'log' };
}

/**
 * The scheduler's moving parts around the pure domain: the view (restored from its snapshot and
 * caught up by a live subscription of the log after the snapshot's position, or from position 1
 * without a usable snapshot), the dispatch loop (runs on every change
 * and on a timer; one pass is bounded), node liveness from heartbeats, and the command handlers
 * (load the stream, decide, append with expected version).
 */
@Injectable()
export class SchedulerEngine implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly log = new Logger('SchedulerEngine');
  /** Replaced once at start-up (restored from the snapshot); read only after that. */
  view: SchedulerView;
  private readonly startedAtMs = Date.now();
  private readonly snapshots?: SnapshotStore;
  private readonly snapshotSchedule: SnapshotSchedule;
  private subscription?: Subscription;
  private heartbeats?: NatsSubscription;
  private timers: NodeJS.Timeout[] = [];
  private ready = false;
  /** When this instance became ready: a dispatch from before gets the whole start timeout from here. */
  private readyAtMs = 0;
  private stopping = false;
  private passScheduled = false;
  private passAgain = false;
  private passRunning?: Promise<void>;
  private livenessRunning?: Promise<void>;
  /** Dispatches written since start (health). */
  dispatchedTotal = 0;
  /** Who owns each wallet (for submit-task), fed by the WalletOpened events the view folds. */
  private readonly walletOwners: WalletOwners;

  constructor(
    @Inject(EVENT_STORE) private readonly store: EventStore,
    @Inject(NATS_CONNECTION) private readonly nc: NatsConnection,
    @Inject(SERVICE_CONFIG) private readonly config: Config,
    private readonly taskHandler: TaskHandler,
    private readonly functionHandler: FunctionHandler,
    private readonly objects: TaskObjects,
    /** Replicas: only the leader dispatches and checks liveness; every replica folds the view and answers requests. */
    @Optional() @Inject(LEADERSHIP) private readonly leadership: Leadership = ALWAYS_LEADER,
  ) {
    this.view = new SchedulerView(this.startedAtMs);
    this.walletOwners = new WalletOwners(store);
    this.snapshots = new KvSnapshotStore(nc);
    this.snapshotSchedule = new SnapshotSchedule(config.SCHEDULER_SNAPSHOT_EVERY_EVENTS, config.SCHEDULER_SNAPSHOT_EVERY_MS);
  }

  /** The KV key of this scheduler's view snapshot. */
  get snapshotKey(): string {
    return `scheduler.${this.config.SCHEDULER_INSTANCE}.view`;
  }

  // --- lifecycle ---------------------------------------------------------------------------------
  async onApplicationBootstrap(): Promise<void> {
    const restored = await restoreSchedulerView(
      this.config.SCHEDULER_SNAPSHOT_LOAD === 'on' ? this.snapshots : undefined,
      this.snapshotKey,
      this.startedAtMs,
      this.log,
    );
    this.view = restored.view;
    const head = await this.store.headPosition();
    this.follow(restored.position);
    const timeoutMs = this.config.SCHEDULER_CATCH_UP_TIMEOUT_MS;
    const deadline = Date.now() + timeoutMs;
    while ((this.subscription?.position ?? 0n) < head) {
      if (Date.now() > deadline) {
        throw new Error(
          `scheduler view did not catch up with the log (from ${restored.from === 'snapshot' ? `the snapshot at ${restored.position}` : 'position 1'} to head ${head}) within SCHEDULER_CATCH_UP_TIMEOUT_MS ${timeoutMs} ms`,
        );
      }
      await sleep(10);
    }
    this.heartbeats = this.nc.subscribe(`${HEARTBEAT_PREFIX}.*`, { callback: (err, msg) => !err && this.onHeartbeatMessage(msg.data, msg.subject) });
    this.timers.push(setInterval(() => this.kick(), this.config.DISPATCH_INTERVAL_MS));
    this.timers.push(
      setInterval(
        () =>
          void this.checkLiveness().catch((err) =>
            this.log.warn(`liveness check failed (the next check runs in ${this.config.LIVENESS_CHECK_MS} ms): ${messageOf(err)}`),
          ),
        this.config.LIVENESS_CHECK_MS,
      ),
    );
    this.ready = true;
    this.readyAtMs = Date.now();
    runningEngines.add(this);
    this.leadership.onChange((leader) => this.onLeadership(leader));
    // A long catch-up (counted by onLogEvent) is worth a snapshot at once, so the next start does not repeat it.
    if (this.snapshotSchedule.due()) void this.snapshotSchedule.run(() => this.writeSnapshot());
    this.log.log(
      `view rebuilt to position ${head} in ${Date.now() - this.startedAtMs} ms (${restored.from === 'snapshot' ? `snapshot at ${restored.position} + the log after it` : 'whole log replayed'}): ${this.view.functions.size} functions, ${this.view.tasks.size} tasks, ${this.view.pool.size} pending, ${this.view.nodes.size} nodes`,
    );
    this.kick();
  }

  /**
   * A new leader (a standby whose view is warm) starts dispatching at once. Dispatches of the old
   * leader get the whole start timeout from now (the execution consumer may be behind), and a pass of
   * a replica that lost the lease ends at its next proposal: kick and liveness check leadership.
   */
  private onLeadership(leader: boolean): void {
    if (!leader) return;
    this.readyAtMs = Date.now();
    this.kick();
  }

  async onModuleDestroy(): Promise<void> {
    this.stopping = true;
    runningEngines.delete(this);
    for (const t of this.timers) clearInterval(t);
    if (!this.nc.isClosed()) this.heartbeats?.unsubscribe();
    await this.passRunning;
    await this.livenessRunning?.catch(() => undefined); // its failure is logged where it is checked
    await this.subscription?.stop();
    await this.snapshotSchedule.inFlight;
  }

  /** Live subscription of the view's categories; resubscribes after its position if it fails. */
  private follow(after: bigint): void {
    const subscription = this.store.subscribe({ after, categories: VIEW_CATEGORIES }, (event) => this.onLogEvent(event));
    this.subscription = subscription;
    subscription.done.catch((err) => {
      if (this.stopping) return;
      this.log.error(`view subscription failed at position ${subscription.position}: ${messageOf(err)}; resubscribing`);
      setTimeout(() => !this.stopping && this.follow(subscription.position), 500);
    });
  }

  /** An event of the view's categories from the log (the store has checked it against its definition). */
  private onLogEvent(event: RecordedEvent): void {
    if (isEventOf(event, VIEW_EVENTS)) this.fold(event);
    else this.log.warn(`the view does not fold ${event.type} of ${event.stream}`);
    this.snapshotSchedule.folded();
    if (this.ready && this.snapshotSchedule.due()) void this.snapshotSchedule.run(() => this.writeSnapshot(event.position));
  }

  /**
   * Writes a snapshot of the view as of log position `position` (the last event the subscription
   * folded). Encoded synchronously, between two folds, so it is one consistent cut; events this
   * instance folded ahead of the log (read-your-writes) are in it too and are skipped by revision
   * when the tail is replayed. A failure is logged; the next snapshot is tried later.
   */
  async writeSnapshot(position = this.subscription?.position ?? 0n): Promise<void> {
    if (!this.snapshots) return;
    try {
      const encoded = encodeSnapshot(SCHEDULER_VIEW_SNAPSHOT_SCHEMA, position, this.view.snapshotRecords());
      const manifest = await this.snapshots.save(this.snapshotKey, encoded);
      this.log.log(
        `snapshot ${this.snapshotKey} at position ${manifest.position}: ${manifest.records} records, ${manifest.bytes} bytes in ${manifest.chunks} chunks`,
      );
    } catch (err) {
      this.log.warn(`snapshot ${this.snapshotKey} not written (the next one is tried later): ${messageOf(err)}`);
    }
  }

  private fold(event: FoldedEvent): void {
    if (isEvent(event, WalletOpened)) this.walletOwners.remember(event.data);
    try {
      this.view.apply(event);
    } catch (err) {
      // A bug in folding must not stop the view (every event was validated on write), so log loudly.
      this.log.error(`cannot fold ${event.type} of ${event.stream}: ${messageOf(err)}`, err instanceof Error ? err.stack : undefined);
    }
    this.kick();
  }

  /** Folds what a command just wrote at once (read-your-writes); the log echo is skipped by revision. */
  private applyLocal(result: CommandResult<unknown, ViewEvent>): void {
    const first = result.nextExpectedVersion - result.decided.length + 1;
    result.decided.forEach((event, i) => this.fold({ ...event, stream: result.stream, revision: first + i }));
  }

  // --- dispatch loop -----------------------------------------------------------------------------
  /** Runs a dispatch pass soon; kicks during a pass coalesce into one more pass. */
  kick(): void {
    if (!this.ready || this.stopping || !this.leadership.isLeader) return;
    if (this.passRunning) {
      this.passAgain = true;
      return;
    }
    if (this.passScheduled) return;
    this.passScheduled = true;
    setImmediate(() => {
      this.passScheduled = false;
      if (this.stopping || this.passRunning) return;
      this.passRunning = this.runPasses().finally(() => (this.passRunning = undefined));
    });
  }

  private async runPasses(): Promise<void> {
    do {
      this.passAgain = false;
      const written = await this.dispatchPass().catch((err) => {
        this.log.error(`dispatch pass failed: ${messageOf(err)}`, err instanceof Error ? err.stack : undefined);
        return 0;
      });
      if (written >= this.config.DISPATCH_BATCH_MAX) this.passAgain = true;
    } while (this.passAgain && !this.stopping);
  }

  /** One bounded pass: each proposal is decided on the task's own stream and appended with its expected version. */
  private async dispatchPass(): Promise<number> {
    let written = 0;
    for (const candidate of this.view.dispatchCandidates(this.config.DISPATCH_BATCH_MAX)) {
      if (this.stopping || !this.leadership.isLeader) break;
      try {
        // No retry on a conflict: the view was behind, and the next pass proposes again from the corrected view.
        const result = await this.taskHandler.handle(
          candidate.task.taskId,
          { kind: 'dispatch', attempt: candidate.task.attempt, nodeId: candidate.nodeId, function: candidate.fn, nowMs: Date.now() },
          0,
        );
        this.applyLocal(result);
        if (result.events.length > 0) {
          written++;
          this.dispatchedTotal++;
          this.log.debug(`dispatched ${candidate.task.taskId} attempt ${candidate.task.attempt} to ${candidate.nodeId}${candidate.warm ? ' (warm)' : ''}`);
        }
      } catch (err) {
        // A conflict means the view was behind (an execution result or a cancel landed meanwhile):
        // the log echo corrects it and the next pass proposes again. Any other failure leaves the task
        // pending in the view, so the next pass (at most DISPATCH_INTERVAL_MS later) proposes it again.
        if (err instanceof ConcurrencyError) this.log.debug(`dispatch of ${candidate.task.taskId} raced another write: ${err.message}`);
        else this.log.warn(`dispatch of ${candidate.task.taskId} not written (proposed again next pass): ${messageOf(err)}`);
      }
    }
    return written;
  }

  // --- node liveness -----------------------------------------------------------------------------
  private onHeartbeatMessage(data: Uint8Array, subject: string): void {
    let beat;
    try {
      beat = nodeHeartbeatSchema.safeParse(decodeJson(data));
    } catch {
      this.log.debug(`ignoring a heartbeat that is not JSON on ${subject}`);
      return;
    }
    if (!beat.success) {
      this.log.debug(`ignoring a malformed heartbeat on ${subject}: ${beat.error.issues[0]?.message}`);
      return;
    }
    if (this.view.heartbeat(beat.data, Date.now())) this.log.log(`node ${beat.data.nodeId} is alive again`);
    this.kick();
  }

  checkLiveness(): Promise<void> {
    if (this.livenessRunning || !this.ready || this.stopping || !this.leadership.isLeader) return this.livenessRunning ?? Promise.resolve();
    this.livenessRunning = (async () => {
      for (const nodeId of this.view.expireNodes(Date.now(), this.config.NODE_LOST_AFTER_MS)) {
        this.log.warn(`node ${nodeId} lost: no heartbeat for ${this.config.NODE_LOST_AFTER_MS} ms`);
      }
      for (const node of this.view.deadNodesWithTasks()) {
        const reason = node.left ? 'infrastructure' : 'node-lost';
        const detail = node.left ? `node ${node.nodeId} left` : `node ${node.nodeId} silent for ${this.config.NODE_LOST_AFTER_MS} ms`;
        for (const taskId of [...node.tasks]) {
          if (this.stopping) return;
          await this.onTask(taskId, { kind: 'node-lost', nodeId: node.nodeId, reason, detail }).catch((err) =>
            this.log.warn(`requeue of ${taskId} from ${node.nodeId} failed (retried next check): ${messageOf(err)}`),
          );
        }
      }
      const timeoutMs = this.config.DISPATCH_START_TIMEOUT_MS;
      for (const task of this.view.unstartedDispatches(Date.now(), timeoutMs, this.readyAtMs)) {
        if (this.stopping) return;
        const { executionId } = task;
        assert(executionId !== undefined, `dispatched task ${task.taskId} has no execution id`);
        // The execution stream is the truth: events there were not applied yet, because the execution
        // consumer has not reached them (a backlog after a restart) or never will (parked as dead
        // letters). Applying them now is harmless either way: the decider ignores what it applied.
        const recorded = await this.recordedExecution(executionId);
        if (recorded.length > 0) {
          await this.applyRecorded(recorded).catch((err) =>
            this.log.warn(`applying the recorded execution ${executionId} of ${task.taskId} failed (retried next check): ${messageOf(err)}`),
          );
          continue;
        }
        this.log.warn(`task ${task.taskId}: attempt ${task.attempt} not started on ${task.nodeId} within ${timeoutMs} ms; requeueing`);
        const detail = `node ${task.nodeId} did not start execution ${executionId} within ${timeoutMs} ms`;
        await this.onTask(task.taskId, { kind: 'start-timeout', executionId, detail }).catch((err) =>
          this.log.warn(`requeue of ${task.taskId} after the start timeout failed (retried next check): ${messageOf(err)}`),
        );
      }
      await this.resolveLostExecutions();
    })().finally(() => (this.livenessRunning = undefined));
    return this.livenessRunning;
  }

  /**
   * Executions a live node has stopped listing in its heartbeats while we still believe them on it:
   * their Execution* events never reached us (e.g. parked as dead letters). The execution stream is
   * the truth: what it recorded is applied (so a legitimately finished execution ends as it ended);
   * with no result there, the attempt is requeued (or the task fails when it was the last one). Both
   * go through the task decider, which ignores a stale attempt, so nothing is dispatched twice.
   */
  private async resolveLostExecutions(): Promise<void> {
    const lostAfterMs = this.config.EXECUTION_LOST_AFTER_MS;
    for (const task of this.view.lostExecutions(Date.now(), lostAfterMs, this.readyAtMs).slice(0, LOST_EXECUTIONS_PER_CHECK)) {
      if (this.stopping) return;
      const { taskId, executionId, nodeId } = task;
      assert(executionId !== undefined, `task ${taskId} on a node has no execution id`);
      try {
        const recorded = await this.recordedExecution(executionId);
        if (recorded.some((e) => !isEvent(e, ExecutionStarted))) {
          this.log.warn(`task ${taskId}: execution ${executionId} ended on ${nodeId} but its result had not reached the scheduler; applying it`);
          await this.applyRecorded(recorded);
          continue;
        }
        this.log.warn(`task ${taskId}: execution ${executionId} lost (node ${nodeId} alive but not running it for ${lostAfterMs} ms); requeueing`);
        const detail = `execution lost: node ${nodeId} has not listed execution ${executionId} for ${lostAfterMs} ms and recorded no result`;
        await this.onTask(taskId, { kind: 'execution-lost', executionId, detail });
      } catch (err) {
        this.log.warn(`resolving the lost execution ${executionId} of ${taskId} failed (retried next check): ${messageOf(err)}`);
      }
    }
  }

  /** The events of one execution stream (written by a container-manager: execution events only). */
  private async recordedExecution(executionId: string): Promise<RecordedExecutionEvent[]> {
    return (await this.store.read(streamName('execution', executionId))).filter((e) => isEventOf(e, executionEvents));
  }

  /** Applies recorded execution events in order, as the execution consumer would have. */
  private async applyRecorded(events: RecordedExecutionEvent[]): Promise<void> {
    for (const event of events) await this.onExecutionEvent(event);
  }

  // --- task commands -------------------------------------------------------------------------------
  /**
   * Load -> decide -> append (expected version, retried on conflict) -> fold locally -> kick. A
   * failure propagates to the caller: a consumer naks (redelivery), a request replies with the error.
   */
  async onTask(taskId: string, command: TaskCommand): Promise<TaskResult> {
    const result = await this.taskHandler.handle(taskId, command);
    this.applyLocal(result);
    return result;
  }

  /** An execution result from a container-manager (durable consumer, at least once). */
  async onExecutionEvent(event: RecordedExecutionEvent): Promise<void> {
    await this.onTask(event.data.taskId, executionCommandOf(event));
  }

  // --- API ---------------------------------------------------------------------------------------
  /**
   * Deploys for `caller`. Who owns the function and which price plan it keeps is settled by the
   * decider against the stream (domain/access.ts): a tenant's plan choice and a redeploy of someone
   * else's function are refused there, before anything is written.
   */
  async deployFunction(body: RequestData<typeof deployFunctionRequest>, caller: Caller): Promise<ReplyData<typeof deployFunctionRequest>> {
    const spec = specFromRequest(body);
    this.checkFitsSomeNode(spec);
    // Only the operator chooses plans; a tenant naming one is refused by the decider.
    if (spec.pricePlanId !== undefined && caller.kind === 'operator') await this.checkPricePlan(spec.pricePlanId);
    const result = await this.functionHandler.deploy(caller, spec);
    this.applyLocal(result);
    const deployed = result.state.spec;
    assert(deployed !== undefined, `function ${spec.functionId} has no spec after its deploy`);
    return { ...deployed, changed: result.decided.length > 0 };
  }

  /**
   * A function may only name a price plan that exists (its stream has a PricePlanSet): otherwise
   * its usage would be priced by a fallback nobody asked for. Read from the log, so the
   * credit-manager need not be up to deploy.
   */
  private async checkPricePlan(planId: string): Promise<void> {
    const versions = await this.store.read(pricePlanStream(planId));
    if (!versions.some((e) => isEvent(e, PricePlanSet))) {
      throw new DomainError(
        'unknown_price_plan',
        `no price plan ${planId}: create it first: mesh plan set ${planId} --cpu <price> (or mesh.api.credit-manager.set-price-plan)`,
      );
    }
  }

  /**
   * Submits for `caller`: the wallet must be the caller's, the function its own or the operator's,
   * an input by reference in the caller's own input bucket (domain/access.ts). The task is the
   * caller's (TaskSubmitted.data.tenantId).
   */
  async submitTask(body: RequestData<typeof submitTaskRequest>, caller: Caller): Promise<ReplyData<typeof submitTaskRequest>> {
    const fn = await this.functionOf(body.functionId);
    await this.checkWallet(body.walletId, caller);
    assertMayUseFunction(caller, fn, 'run');
    assertInputAllowed(caller, body.input.inline !== undefined ? { inline: body.input.inline } : { objectRef: body.input.objectRef! });
    this.checkFitsSomeNode(fn);
    const input = await this.taskInput(body.input, caller);
    const taskId = body.taskId ?? `t${Date.now().toString(36)}${randomBytes(6).toString('hex')}`;
    const result = await this.onTask(taskId, {
      kind: 'submit',
      caller,
      taskId,
      functionId: fn.functionId,
      walletId: body.walletId,
      input,
      priority: body.priority ?? 0,
      maxAttempts: fn.maxAttempts,
      nowMs: Date.now(),
    });
    const s = result.state;
    return {
      taskId,
      functionId: s.functionId,
      walletId: s.walletId,
      priority: s.priority,
      maxAttempts: s.maxAttempts,
      state: s.status as 'pending',
      duplicate: result.events.length === 0,
    };
  }

  /**
   * The input a TaskSubmitted records: an inline input up to LIMITS.inlineInputBytesMax as it came
   * (events stay small), a larger one (up to LIMITS.requestInputBytesMax, the request's limit)
   * stored in the caller's own input bucket and recorded by reference (tenants have no JetStream
   * access to store it themselves).
   */
  private async taskInput(input: RequestData<typeof submitTaskRequest>['input'], caller: Caller): Promise<TaskInput> {
    if (input.inline === undefined) return { objectRef: input.objectRef! };
    const bytes = Buffer.from(input.inline, 'base64');
    if (bytes.length <= LIMITS.inlineInputBytesMax) return { inline: input.inline };
    return { objectRef: await this.objects.storeInput(ownerOf(caller), bytes) };
  }

  /** Cancels for `caller`: only its own task (the decider checks it against the stream). */
  async cancelTask(body: RequestData<typeof cancelTaskRequest>, caller: Caller): Promise<ReplyData<typeof cancelTaskRequest>> {
    const result = await this.onTask(body.taskId, { kind: 'cancel', caller, taskId: body.taskId, reason: body.reason ?? 'cancelled by user' });
    const [first] = result.decided;
    const cancelled = first && isEvent(first, TaskCancelled) ? first : undefined;
    return {
      taskId: body.taskId,
      state: 'cancelled',
      ...(cancelled?.data.executionId ? { executionId: cancelled.data.executionId, nodeId: cancelled.data.nodeId } : {}),
    };
  }

  /** The latest spec from the view, or from its stream when the view has not seen it yet. */
  async functionOf(functionId: string): Promise<FunctionSpec> {
    const known = this.view.functions.get(functionId) ?? (await this.functionHandler.latest(functionId));
    if (!known) throw new DomainError('unknown_function', `no function ${functionId}: deploy it first`);
    return known;
  }

  /** The function query for `caller`: its own or the operator's (another tenant's is refused). */
  async functionFor(caller: Caller, functionId: string): Promise<FunctionSpec> {
    const fn = await this.functionOf(functionId);
    assertMayUseFunction(caller, fn, 'read');
    return fn;
  }

  /** The functions `caller` may see (its own and the operator's; the operator: all), by id. */
  functionsFor(caller: Caller): FunctionSpec[] {
    return [...this.view.functions.values()].filter((fn) => mayUseFunction(caller, fn)).sort((a, b) => a.functionId.localeCompare(b.functionId));
  }

  /** The task query for `caller`: only its own task. */
  async taskFor(caller: Caller, taskId: string): Promise<TaskDetail> {
    const events = await this.taskHandler.history(taskId);
    const submitted = events[0];
    if (submitted && isEvent(submitted, TaskSubmitted)) assertOwnsTask(caller, submitted.data, 'read');
    return this.taskHandler.detailOf(taskId, events);
  }

  /** A chunk of the output of `caller`'s own task (the owner check of the task query, then the object store). */
  async taskOutputFor(caller: Caller, body: RequestData<typeof taskOutputRequest>): Promise<ReplyData<typeof taskOutputRequest>> {
    const detail = await this.taskFor(caller, body.taskId);
    if (!detail.outputRef) throw new DomainError('no_output', `task ${body.taskId} has no output (state ${detail.state})`);
    const chunk = await this.objects.readOutputChunk(detail.outputRef, body.offset ?? 0, body.limitBytes);
    return { taskId: body.taskId, totalBytes: chunk.totalBytes, offset: chunk.offset, chunk: chunk.bytes.toString('base64'), done: chunk.done };
  }

  private async checkWallet(walletId: string, caller: Caller): Promise<void> {
    const wallet = await this.walletOwners.lookup(walletId);
    if (!wallet) throw new DomainError('unknown_wallet', `no wallet ${walletId}: open it with the ledger first`);
    assertOwns(caller, wallet.owner, 'submit tasks on', `wallet ${walletId}`);
    if (wallet.kind === 'provider') throw new DomainError('provider_wallet', `wallet ${walletId} is a provider wallet: it earns, it cannot submit tasks`);
  }

  /** Refuses limits no registered node could ever hold (no refusal while no node is registered). */
  private checkFitsSomeNode(spec: Pick<FunctionSpec, 'cpuInitialMillis' | 'memoryBytes'>): void {
    const nodes = [...this.view.nodes.values()].filter((n) => n.registered && !n.left);
    if (nodes.length === 0) return;
    if (nodes.some((n) => n.cpuMillis >= spec.cpuInitialMillis && n.memoryBytes >= spec.memoryBytes)) return;
    const cpu = Math.max(...nodes.map((n) => n.cpuMillis));
    const memory = Math.max(...nodes.map((n) => n.memoryBytes));
    throw new DomainError(
      'exceeds_node_capacity',
      `cpuInitialMillis ${spec.cpuInitialMillis} m and memoryBytes ${spec.memoryBytes} fit no registered node (largest: ${cpu} m, ${memory} bytes)`,
    );
  }

  // --- queries -----------------------------------------------------------------------------------
  /** The tasks query: a tenant's list holds only the tasks it submitted. */
  tasks(body: RequestData<typeof tasksRequest>, caller: Caller): ReplyData<typeof tasksRequest> {
    const limit = body.limit ?? 100;
    const owner = caller.kind === 'tenant' ? ownerOf(caller) : undefined;
    const { tasks, total } = this.view.listTasks({ walletId: body.walletId, state: body.state, owner }, limit);
    return {
      tasks: tasks.map((t) =>
        dropUndefined({
          taskId: t.taskId,
          functionId: t.functionId,
          walletId: t.walletId,
          state: t.state,
          priority: t.priority,
          attempt: t.attempt,
          maxAttempts: t.maxAttempts,
          nodeId: t.nodeId,
          reason: t.reason,
          submittedAtMs: t.submittedAtMs,
        }),
      ),
      total,
      truncated: total > tasks.length,
    };
  }

  pools(): ReplyData<typeof poolsRequest> {
    const perWallet = new Map<string, { pending: number; dispatched: number; running: number }>();
    const entry = (w: string) => perWallet.get(w) ?? perWallet.set(w, { pending: 0, dispatched: 0, running: 0 }).get(w)!;
    for (const [walletId, pending] of this.view.pool.wallets()) entry(walletId).pending = pending;
    for (const node of this.view.nodes.values()) {
      for (const taskId of node.tasks) {
        const t = this.view.tasks.get(taskId);
        if (t?.state === 'dispatched') entry(t.walletId).dispatched++;
        if (t?.state === 'running') entry(t.walletId).running++;
      }
    }
    return {
      pending: this.view.pool.size,
      dispatched: this.view.dispatched,
      running: this.view.running,
      wallets: [...perWallet].map(([walletId, counts]) => {
        const w = this.view.wallets.get(walletId);
        return { walletId, ...counts, standing: w?.standing ?? null, policy: w?.policy ?? null, dispatchable: isDispatchable(w) };
      }),
    };
  }

  nodes(): ReplyData<typeof nodesRequest> {
    return {
      nodes: [...this.view.nodes.values()]
        .filter((n) => n.registered)
        .map((n) => ({
          nodeId: n.nodeId,
          cpuMillis: n.cpuMillis,
          memoryBytes: n.memoryBytes,
          reservedCpuMillis: n.reservedCpuMillis,
          reservedMemoryBytes: n.reservedMemoryBytes,
          usedCpuMillis: n.usedCpuMillis ?? null,
          usedMemoryBytes: n.usedMemoryBytes ?? null,
          freeCpuMillis: Math.max(0, freeCpuMillis(n)),
          freeMemoryBytes: Math.max(0, freeMemoryBytes(n)),
          tasks: n.tasks.size,
          idleContainers: n.idleKeys.size,
          lastHeartbeatAtMs: n.lastHeartbeatAtMs ?? null,
          runningContainers: n.runningContainers ?? null,
          alive: n.alive,
          left: n.left,
          draining: n.draining,
          state: n.left ? 'left' : !n.alive ? 'lost' : n.draining ? 'draining' : 'ready',
          network: n.network ?? true,
          reliability: n.reliability,
          completed: n.completed,
          lost: n.lost,
        })),
    };
  }

  health() {
    return {
      positions: { view: (this.subscription?.position ?? 0n).toString() },
      details: {
        pending: this.view.pool.size,
        dispatched: this.view.dispatched,
        running: this.view.running,
        nodes: this.view.nodes.size,
        dispatchedSinceStart: this.dispatchedTotal,
      },
    };
  }
}

/** The task command an execution result stands for. */
function executionCommandOf(event: RecordedExecutionEvent): TaskCommand {
  switch (event.type) {
    case 'ExecutionStarted':
      return { kind: 'execution-started', executionId: event.data.executionId, nodeId: event.data.nodeId, containerId: event.data.containerId };
    case 'ExecutionSucceeded':
      return { kind: 'execution-succeeded', executionId: event.data.executionId, outputRef: event.data.outputRef, durationMs: event.data.durationMs };
    case 'ExecutionFailed': {
      const { executionId, reason, retryable, exitCode, stderrTail } = event.data;
      return { kind: 'execution-failed', executionId, reason, retryable, ...(typeof exitCode === 'number' ? { exitCode } : {}), detail: lastLine(stderrTail) };
    }
    case 'ExecutionTimedOut':
      return { kind: 'execution-timed-out', executionId: event.data.executionId, timeoutMs: event.data.timeoutMs };
    case 'ExecutionAborted':
      return { kind: 'execution-aborted', executionId: event.data.executionId, reason: event.data.reason };
  }
}

function lastLine(text: string | undefined): string | undefined {
  const line = text?.trim().split('\n').pop()?.trim();
  return line ? line.slice(0, 512) : undefined;
}
