import { Inject, Injectable, Logger, type BeforeApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import type { NatsConnection } from 'nats';
import {
  ContainerResized,
  ContainerStarted,
  ContainerStopped,
  ExecutionAborted,
  ExecutionFailed,
  ExecutionStarted,
  ExecutionSucceeded,
  ExecutionTimedOut,
  NodeLeft,
  NodeRegistered,
  ResourceSampled,
  TaskCancelled,
  TaskDispatched,
  ScalingDecided,
  StandingChanged,
  eventOf,
  heartbeatSubject,
  nodeHeartbeatSchema,
  streamName,
  type EventData,
  type EventDefinition,
  type NodeHeartbeat,
} from '@mesh/contracts';
import type { commonEnv, ConfigOf } from '@mesh/config';
import { ConcurrencyError } from '@mesh/eventstore/errors';
import type { EventStore, ExpectedVersion } from '@mesh/eventstore/port';
import { EVENT_STORE, NATS_CONNECTION, SERVICE_CONFIG } from '@mesh/runtime';
import type { ContainerManagerEnv } from '../config';
import { DockerEngine, DockerUnavailableError, ImageMissingError, type TaskOptions, type TaskRun } from '../docker/docker-engine';
import { assertNonRootUser, cpuMillisOf, newContainerId } from '../docker/sandbox';
import type { CgroupPaths } from '../docker/cgroup';
import { closingWindow, initialCursor, nextWindow, type SampleCursor, type SampleWindow } from '../domain/sample-window';
import { eventId, parseNodeLabels } from '../domain/event-ids';
import { isSuperseded } from '../domain/superseded';
import { InputMissingError, readTaskInput, writeExecutionOutput } from '../storage/object-io';
import { packTar, unpackTar } from '../storage/tar';

export type ContainerManagerConfig = ConfigOf<typeof ContainerManagerEnv & typeof commonEnv>;

type Dispatch = EventData<typeof TaskDispatched>;
type Cancel = EventData<typeof TaskCancelled>;
type Decision = EventData<typeof ScalingDecided>;
type Standing = EventData<typeof StandingChanged>;
type StopReason = EventData<typeof ContainerStopped>['reason'];
type ExecutionEnd = 'timeout' | 'suspended' | 'cancelled' | 'superseded' | 'agent-restart';

const TERMINAL_TYPES = new Set(['ExecutionSucceeded', 'ExecutionFailed', 'ExecutionTimedOut', 'ExecutionAborted']);
/** Appends that failed because NATS did not answer are retried this often before giving up. */
const APPEND_ATTEMPTS = 5;
const STDERR_TAIL_MAX = 4096;

interface ExecutionState {
  executionId: string;
  taskId: string;
  attempt: number;
  walletId: string;
  functionId: string;
  containerId: string;
  timeoutMs: number;
  startedAtMs: number;
  warm: boolean;
  recordedStart: boolean;
  /** Set when the agent ends the run itself (the script's own exit is then not reported). */
  ending?: ExecutionEnd;
  terminalClaimed: boolean;
  timer?: NodeJS.Timeout;
  oomKillsBefore?: number;
}

interface ContainerState {
  containerId: string;
  dockerId: string;
  walletId: string;
  functionId: string;
  image: string;
  cpuMillis: number;
  memoryBytes: number;
  cpuMinMillis: number;
  cpuMaxMillis: number;
  /** Revision of the last event of container-<containerId> (-1 = none). */
  version: number;
  status: 'idle' | 'busy' | 'stopping';
  execution?: ExecutionState;
  idleTimer?: NodeJS.Timeout;
  cgroup?: CgroupPaths;
  cursor: SampleCursor;
  /** Serializes counter reads (cursor updates) and, separately, the usage appends in seq order. */
  readChain: Promise<void>;
  appendChain: Promise<void>;
  /** Serializes appends to the container stream (expected versions). */
  streamChain: Promise<void>;
  finalTaken: boolean;
  appliedDecisions: Set<string>;
  stopping?: Promise<void>;
}

/**
 * The node agent: owns this node's task containers (one warm container per wallet and function,
 * reused across tasks), runs task scripts in them, samples their cgroup counters, applies resize
 * decisions, aborts on suspension, reaps idle containers and reconciles with Docker after a restart.
 * Only containers labelled with this node's id are ever touched.
 */
@Injectable()
export class ContainerAgent implements OnModuleInit, BeforeApplicationShutdown {
  /** The agent of this process, for the health reply (one agent per process outside tests). */
  static latest?: ContainerAgent;
  private readonly log: Logger;
  readonly engine: DockerEngine;
  readonly nodeId: string;
  private readonly containers = new Map<string, ContainerState>();
  private readonly executions = new Map<string, ExecutionState>();
  private readonly timers: NodeJS.Timeout[] = [];
  private crashed = false;
  private reconciled = false;
  private dockerError?: string;

  constructor(
    @Inject(EVENT_STORE) private readonly store: EventStore,
    @Inject(NATS_CONNECTION) private readonly nc: NatsConnection,
    @Inject(SERVICE_CONFIG) private readonly config: ContainerManagerConfig,
  ) {
    ContainerAgent.latest = this;
    this.nodeId = config.NODE_ID;
    this.log = new Logger(`container-manager:${config.NODE_ID}`);
    assertNonRootUser(config.TASK_USER);
    this.engine = new DockerEngine(config.DOCKER_SOCKET, config.DOCKER_RETRIES);
  }

  // --- lifecycle -------------------------------------------------------------------------------

  async onModuleInit(): Promise<void> {
    const labels = parseNodeLabels(this.config.NODE_LABELS);
    await this.appendWithRetry(
      streamName('node', this.nodeId),
      [
        eventOf(NodeRegistered, eventId('node', this.nodeId, 'up', Date.now()), {
          nodeId: this.nodeId,
          cpuMillis: this.config.NODE_CPU_MILLIS,
          memoryBytes: this.config.NODE_MEMORY_BYTES,
          labels,
          registeredAtMs: Date.now(),
        }),
      ],
      'any',
    );
    await this.reconcile().catch((err) => {
      this.dockerError = String((err as Error)?.message ?? err);
      this.log.error(`reconcile with Docker failed, retrying in the background: ${this.dockerError}`);
    });
    if (!this.reconciled) {
      const retry = setInterval(() => {
        if (this.reconciled) return clearInterval(retry);
        this.reconcile().then(
          () => clearInterval(retry),
          (err) => (this.dockerError = String((err as Error)?.message ?? err)),
        );
      }, 5000);
      this.timers.push(retry);
    }
    this.timers.push(setInterval(() => this.sampleAll(), this.config.SAMPLE_INTERVAL_MS));
    this.timers.push(setInterval(() => this.heartbeat(), this.config.NODE_HEARTBEAT_MS));
    this.heartbeat();
  }

  async beforeApplicationShutdown(): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    if (this.crashed) return;
    await Promise.all([...this.containers.values()].map((c) => this.stopContainer(c, 'shutdown', 'agent-restart')));
    await this.appendWithRetry(
      streamName('node', this.nodeId),
      [eventOf(NodeLeft, eventId('node', this.nodeId, 'left', Date.now()), { nodeId: this.nodeId, reason: 'shutdown', leftAtMs: Date.now() })],
      'any',
    ).catch((err) => this.log.error(`NodeLeft not recorded: ${err}`));
  }

  /** Test hook: behave like a killed process (no cleanup, no events) from now on. */
  simulateCrash(): void {
    this.crashed = true;
    for (const t of this.timers) clearInterval(t);
    for (const c of this.containers.values()) {
      clearTimeout(c.idleTimer);
      if (c.execution) clearTimeout(c.execution.timer);
    }
  }

  status(): { dockerError?: string; containers: { containerId: string; status: string; walletId: string; functionId: string }[] } {
    return {
      dockerError: this.dockerError,
      containers: [...this.containers.values()].map((c) => ({ containerId: c.containerId, status: c.status, walletId: c.walletId, functionId: c.functionId })),
    };
  }

  /** Health: degraded while the Docker engine does not answer. */
  async health(): Promise<{ status: 'ok' | 'degraded'; details: Record<string, unknown> }> {
    const all = [...this.containers.values()];
    const details = {
      nodeId: this.nodeId,
      containers: all.length,
      busy: all.filter((c) => c.status === 'busy').length,
      idle: all.filter((c) => c.status === 'idle').length,
      reconciled: this.reconciled,
      ...(this.dockerError ? { dockerError: this.dockerError } : {}),
    };
    return { status: this.dockerError || !this.reconciled ? 'degraded' : 'ok', details };
  }

  private heartbeat(): void {
    if (this.crashed) return;
    const all = [...this.containers.values()];
    const beat: NodeHeartbeat = {
      nodeId: this.nodeId,
      atMs: Date.now(),
      cpuMillis: this.config.NODE_CPU_MILLIS,
      memoryBytes: this.config.NODE_MEMORY_BYTES,
      usedCpuMillis: all.reduce((s, c) => s + c.cpuMillis, 0),
      usedMemoryBytes: all.reduce((s, c) => s + c.memoryBytes, 0),
      runningContainers: all.length,
      idleContainers: all
        .filter((c) => c.status === 'idle')
        .slice(0, 10_000)
        .map((c) => ({ walletId: c.walletId, functionId: c.functionId, containerId: c.containerId })),
    };
    try {
      this.nc.publish(heartbeatSubject(this.nodeId), JSON.stringify(nodeHeartbeatSchema.parse(beat)));
    } catch (err) {
      this.log.warn(`heartbeat not sent: ${err}`);
    }
  }

  // --- commands from events --------------------------------------------------------------------

  /** A TaskDispatched: run it here if it is ours and not stale. Resolves once the script runs (or the attempt failed). */
  async dispatch(d: Dispatch): Promise<void> {
    if (d.nodeId !== this.nodeId || this.crashed) return;
    if (this.executions.has(d.executionId)) return;
    // Both reads at once: this is on the path from dispatch to script running.
    const [history, task] = await Promise.all([this.store.read(streamName('execution', d.executionId)), this.store.read(streamName('task', d.taskId))]);
    if (history.length > 0) {
      // Already handled. If it started and never ended while we are not running it, we crashed under it.
      const started = history.find((e) => e.type === 'ExecutionStarted');
      if (started && !history.some((e) => TERMINAL_TYPES.has(e.type))) {
        const s = started.data as EventData<typeof ExecutionStarted>;
        await this.appendExecution(
          d.executionId,
          ExecutionFailed,
          'end',
          {
            ...s,
            reason: 'agent-restart',
            retryable: true,
            stderrTail: 'the container-manager restarted while the task ran',
            durationMs: Math.max(0, Date.now() - s.startedAtMs),
          },
          history.length - 1,
        );
      }
      return;
    }
    if (isSuperseded(task, d.attempt)) return;

    let input: Buffer;
    try {
      input = await readTaskInput(this.nc, d.input, this.config.INPUT_MAX_BYTES);
    } catch (err) {
      if (err instanceof InputMissingError) return this.failWithoutContainer(d, 'input-missing', false, err.message);
      throw err;
    }
    const jobTar = await packTar({ 'job/': null, 'job/script': Buffer.from(d.function.script, 'utf8'), 'job/input': input, 'job/out/': null });
    let container = this.takeIdle(d.walletId, d.functionId, d.function.image);
    const warm = container !== undefined;
    let coldRun: TaskRun | undefined;
    if (!container) {
      try {
        ({ container, run: coldRun } = await this.startContainer(d, jobTar));
      } catch (err) {
        if (err instanceof ImageMissingError) return this.failWithoutContainer(d, 'image-missing', false, err.message);
        this.dockerError = String((err as Error)?.message ?? err);
        const message = err instanceof DockerUnavailableError ? err.message : `Docker refused to start the container: ${this.dockerError}`;
        return this.failWithoutContainer(d, 'docker-error', true, message);
      }
    }
    await this.runExecution(container, d, jobTar, warm, coldRun);
  }

  /** A TaskCancelled: kill its running execution on this node. */
  async cancel(d: Cancel): Promise<void> {
    if (this.crashed || (d.nodeId && d.nodeId !== this.nodeId)) return;
    const e = d.executionId ? this.executions.get(d.executionId) : [...this.executions.values()].find((x) => x.taskId === d.taskId);
    if (!e) return;
    const c = this.containers.get(e.containerId);
    if (c) await this.stopContainer(c, 'cancelled', 'cancelled');
  }

  /**
   * A TaskRequeued or TaskFailed: if this node still runs that attempt (the scheduler declared the
   * node lost while it was cut off, or gave up waiting for the start, and moved on), kill it; its
   * result would be ignored, and the wallet would pay for it. An attempt that ended here is no
   * longer in `executions`, so the scheduler's answer to our own result changes nothing.
   */
  async superseded(d: { taskId: string; attempt: number }, by: 'TaskRequeued' | 'TaskFailed'): Promise<void> {
    if (this.crashed) return;
    const e = [...this.executions.values()].find((x) => x.taskId === d.taskId && x.attempt <= d.attempt);
    if (!e) return;
    const c = this.containers.get(e.containerId);
    if (!c) return;
    this.log.warn(`execution ${e.executionId}: the scheduler moved on (${by} for attempt ${d.attempt}); stopping it`);
    await this.stopContainer(c, 'superseded', 'superseded');
  }

  /** A ScalingDecided for one of our containers: apply in place, record what was applied. */
  async resize(d: Decision): Promise<void> {
    if (d.nodeId !== this.nodeId || this.crashed) return;
    const c = this.containers.get(d.containerId);
    if (!c || c.status === 'stopping' || c.appliedDecisions.has(d.decisionId)) return;
    c.appliedDecisions.add(d.decisionId);
    const fromCpuMillis = c.cpuMillis;
    const fromMemoryBytes = c.memoryBytes;
    const t0 = process.hrtime.bigint();
    let toMemoryBytes = d.toMemoryBytes;
    try {
      await this.engine.updateLimits(c.dockerId, d.toCpuMillis, d.toMemoryBytes);
    } catch (err) {
      if ((c.status as string) === 'stopping' || !(await this.engine.inspect(c.dockerId).catch(() => undefined))) return;
      // Typically a memory limit below what the container uses now: apply the CPU part alone and
      // record the memory that stayed, so the scaler sees its decision answered.
      this.log.warn(`resize ${d.decisionId} of ${c.containerId}: memory ${d.toMemoryBytes} refused (${(err as Error)?.message ?? err}); applying CPU only`);
      try {
        await this.engine.updateLimits(c.dockerId, d.toCpuMillis, c.memoryBytes);
        toMemoryBytes = c.memoryBytes;
      } catch (again) {
        c.appliedDecisions.delete(d.decisionId);
        this.log.warn(`resize ${d.decisionId} of ${c.containerId} refused by Docker: ${(again as Error)?.message ?? again}`);
        return;
      }
    }
    const applyMs = Number((process.hrtime.bigint() - t0) / 1_000_000n);
    c.cpuMillis = d.toCpuMillis;
    c.memoryBytes = toMemoryBytes;
    await this.appendContainer(c, ContainerResized, eventId(c.containerId, 'rs', d.decisionId), {
      ...this.containerRef(c),
      decisionId: d.decisionId,
      fromCpuMillis,
      toCpuMillis: d.toCpuMillis,
      fromMemoryBytes,
      toMemoryBytes,
      applyMs,
      appliedAtMs: Date.now(),
    });
  }

  /** A StandingChanged to `suspended`: kill the wallet's tasks and stop its containers on this node. */
  async standing(d: Standing): Promise<void> {
    if (d.to !== 'suspended' || this.crashed) return;
    const mine = [...this.containers.values()].filter((c) => c.walletId === d.walletId);
    await Promise.all(mine.map((c) => this.stopContainer(c, 'suspended', 'suspended')));
  }

  // --- containers ------------------------------------------------------------------------------

  private takeIdle(walletId: string, functionId: string, image: string): ContainerState | undefined {
    for (const c of this.containers.values()) {
      if (c.status === 'idle' && c.walletId === walletId && c.functionId === functionId && c.image === image) {
        c.status = 'busy';
        clearTimeout(c.idleTimer);
        return c;
      }
    }
    return undefined;
  }

  private taskOptions(d: Dispatch, jobTar: Buffer): TaskOptions {
    return {
      executionId: d.executionId,
      jobTar,
      capBytes: this.config.OUTPUT_CAP_BYTES,
      user: this.config.TASK_USER,
      env: [`MESH_EXECUTION_ID=${d.executionId}`, `MESH_TASK_ID=${d.taskId}`, `MESH_ATTEMPT=${d.attempt}`, `MESH_FUNCTION_ID=${d.functionId}`],
    };
  }

  /** Cold start: a new sandboxed container whose main process starts running the first task at once. */
  private async startContainer(d: Dispatch, jobTar: Buffer): Promise<{ container: ContainerState; run: TaskRun }> {
    const containerId = newContainerId();
    const fn = d.function;
    const t0 = Date.now();
    const { dockerId, run } = await this.engine.createAndStartWithTask(
      {
        nodeId: this.nodeId,
        containerId,
        walletId: d.walletId,
        functionId: d.functionId,
        image: fn.image,
        cpuMillis: fn.cpuInitialMillis,
        memoryBytes: fn.memoryBytes,
        network: fn.network,
        pidsLimit: this.config.PIDS_LIMIT,
        workTmpfsBytes: this.config.WORK_TMPFS_BYTES,
        user: this.config.TASK_USER,
      },
      this.taskOptions(d, jobTar),
    );
    const coldStartMs = Date.now() - t0;
    this.dockerError = undefined;
    const c: ContainerState = {
      containerId,
      dockerId,
      walletId: d.walletId,
      functionId: d.functionId,
      image: fn.image,
      cpuMillis: fn.cpuInitialMillis,
      memoryBytes: fn.memoryBytes,
      cpuMinMillis: fn.cpuMinMillis,
      cpuMaxMillis: fn.cpuMaxMillis,
      version: -1,
      status: 'busy',
      cgroup: this.engine.cgroupPaths(dockerId),
      // The counter of a new container starts at 0 at its start: the first window covers it all.
      cursor: initialCursor({ cpuNanosTotal: 0, memoryBytes: 0 }, t0),
      readChain: Promise.resolve(),
      appendChain: Promise.resolve(),
      streamChain: Promise.resolve(),
      finalTaken: false,
      appliedDecisions: new Set(),
    };
    this.containers.set(containerId, c);
    // Recorded while the first script starts (not awaited here); ExecutionStarted waits for it.
    void this.appendContainer(c, ContainerStarted, eventId(containerId, 'started'), {
      ...this.containerRef(c),
      dockerId,
      image: fn.image,
      cpuMillis: c.cpuMillis,
      memoryBytes: c.memoryBytes,
      cpuMaxMillis: c.cpuMaxMillis,
      cpuMinMillis: c.cpuMinMillis,
      coldStartMs,
      startedAtMs: t0,
    });
    return { container: c, run };
  }

  private scheduleIdleStop(c: ContainerState): void {
    clearTimeout(c.idleTimer);
    if (this.crashed) return;
    c.idleTimer = setTimeout(() => {
      if (c.status === 'idle') void this.stopContainer(c, 'idle').catch((err) => this.log.error(`idle stop of ${c.containerId}: ${err}`));
    }, this.config.IDLE_TIMEOUT_MS);
  }

  /**
   * Stops and removes a container: take the last sample, kill and remove it, then record the end
   * of its execution (if one ran) and ContainerStopped. Idempotent. CPU used between the last
   * reading and the kill (a few ms at most, none for an idle container) is not billed.
   */
  stopContainer(c: ContainerState, reason: StopReason, executionEnd?: ExecutionEnd): Promise<void> {
    if (c.stopping) return c.stopping;
    c.status = 'stopping';
    clearTimeout(c.idleTimer);
    const e = c.execution;
    if (e && !e.terminalClaimed) {
      e.ending = executionEnd ?? 'agent-restart';
      clearTimeout(e.timer);
    }
    c.stopping = (async () => {
      // The last reading, then SIGKILL and removal at once. (No `docker pause` to freeze the
      // counters first: on cgroup v1 a frozen container cannot be killed and `rm -f` then hangs.)
      await this.sample(c, true);
      await this.engine.remove(c.dockerId).catch((err) => this.log.error(`remove ${c.containerId}: ${err}`));
      const stoppedAtMs = Date.now();
      if (e && e.ending && !e.terminalClaimed) await this.recordExecutionEnd(c, e, e.ending);
      await c.appendChain;
      await this.appendContainer(c, ContainerStopped, eventId(c.containerId, 'stopped'), { ...this.containerRef(c), reason, stoppedAtMs });
      this.containers.delete(c.containerId);
    })();
    return c.stopping;
  }

  // --- executions ------------------------------------------------------------------------------

  private async runExecution(c: ContainerState, d: Dispatch, jobTar: Buffer, warm: boolean, coldRun?: TaskRun): Promise<void> {
    const e: ExecutionState = {
      executionId: d.executionId,
      taskId: d.taskId,
      attempt: d.attempt,
      walletId: d.walletId,
      functionId: d.functionId,
      containerId: c.containerId,
      timeoutMs: d.function.timeoutMs,
      startedAtMs: Date.now(),
      warm,
      recordedStart: false,
      terminalClaimed: false,
    };
    this.executions.set(e.executionId, e);
    c.execution = e;
    c.status = 'busy';
    clearTimeout(c.idleTimer);
    let run: TaskRun;
    if (coldRun) {
      // A new cgroup: its OOM kill counter starts at 0.
      e.oomKillsBefore = 0;
      run = coldRun;
    } else {
      e.oomKillsBefore = (await this.engine.readCounters(c.dockerId, c.cgroup, true))?.oomKills;
      try {
        run = await this.engine.startTask(c.dockerId, this.taskOptions(d, jobTar));
      } catch (err) {
        e.terminalClaimed = true;
        await this.appendExecution(
          e.executionId,
          ExecutionFailed,
          'end',
          {
            ...this.executionRef(e, c),
            reason: 'docker-error',
            retryable: true,
            stderrTail: `could not start the script: ${(err as Error)?.message ?? err}`.slice(0, STDERR_TAIL_MAX),
            durationMs: 0,
          },
          'no_stream',
        );
        this.executions.delete(e.executionId);
        await this.stopContainer(c, 'error');
        return;
      }
    }
    e.timer = setTimeout(
      () => void this.stopContainer(c, 'timeout', 'timeout').catch((err) => this.log.error(`timeout of ${e.executionId}: ${err}`)),
      e.timeoutMs,
    );
    const started = await run.started;
    if (started && !e.ending) {
      e.startedAtMs = Date.now();
      await c.streamChain;
      await this.appendExecution(e.executionId, ExecutionStarted, 'started', { ...this.executionRef(e, c), startedAtMs: e.startedAtMs, warm }, 'no_stream');
      e.recordedStart = true;
    }
    void this.finishExecution(c, e, run).catch((err) => this.log.error(`execution ${e.executionId}: ${(err as Error)?.stack ?? err}`));
  }

  private async finishExecution(c: ContainerState, e: ExecutionState, run: TaskRun): Promise<void> {
    const result = await run.done;
    clearTimeout(e.timer);
    if (e.ending || e.terminalClaimed || this.crashed) return;
    e.terminalClaimed = true;
    const durationMs = Math.max(0, Date.now() - e.startedAtMs);
    const expected: ExpectedVersion = e.recordedStart ? 0 : 'no_stream';
    if (result.exitCode === undefined) {
      await this.appendExecution(
        e.executionId,
        ExecutionFailed,
        'end',
        {
          ...this.executionRef(e, c),
          reason: 'docker-error',
          retryable: true,
          stderrTail: 'the container went away while the script ran',
          durationMs,
        },
        expected,
      );
      this.executions.delete(e.executionId);
      await this.stopContainer(c, 'error');
      return;
    }
    const counters = await this.engine.readCounters(c.dockerId, c.cgroup, true);
    let oom = result.exitCode !== 0 && counters?.oomKills !== undefined && e.oomKillsBefore !== undefined && counters.oomKills > e.oomKillsBefore;
    if (!oom && result.exitCode === 137) oom = (await this.engine.inspect(c.dockerId).catch(() => undefined))?.State?.OOMKilled === true;

    let files: Record<string, Buffer> = {};
    let filesTruncated = false;
    try {
      const collected = await this.engine.collectOutput(c.dockerId, this.config.TASK_USER, this.config.OUTPUT_DIR_MAX_BYTES);
      if (collected.tar) files = await unpackTar(collected.tar);
      else filesTruncated = true;
    } catch (err) {
      this.log.warn(`output folder of ${e.executionId} not collected: ${(err as Error)?.message ?? err}`);
      filesTruncated = true;
    }
    const outputRef = await writeExecutionOutput(this.nc, e.executionId, {
      manifest: {
        format: 1,
        executionId: e.executionId,
        exitCode: result.exitCode,
        stdoutBytes: result.stdoutBytes,
        stderrBytes: result.stderrBytes,
        stdoutTruncated: result.stdoutBytes > result.stdout.length,
        stderrTruncated: result.stderrBytes > result.stderr.length,
        filesTruncated,
      },
      stdout: result.stdout,
      stderr: result.stderr,
      files,
    });
    // The container is free again before the result is announced, so the next dispatch finds it warm.
    this.executions.delete(e.executionId);
    c.execution = undefined;
    if (c.status === 'busy') {
      c.status = 'idle';
      this.scheduleIdleStop(c);
    }
    if (result.exitCode === 0 && result.started) {
      await this.appendExecution(e.executionId, ExecutionSucceeded, 'end', { ...this.executionRef(e, c), outputRef, durationMs }, expected);
    } else {
      await this.appendExecution(
        e.executionId,
        ExecutionFailed,
        'end',
        {
          ...this.executionRef(e, c),
          exitCode: result.exitCode,
          reason: oom ? 'oom' : 'exit-code',
          retryable: false,
          stderrTail: (oom ? `killed by the kernel: out of memory (limit ${c.memoryBytes} bytes)\n` : '') + result.stderrTail.slice(-STDERR_TAIL_MAX + 100),
          durationMs,
          outputRef,
        },
        expected,
      );
    }
  }

  /** The terminal event of an execution the agent ended itself (timeout, abort, shutdown). */
  private async recordExecutionEnd(c: ContainerState, e: ExecutionState, end: ExecutionEnd): Promise<void> {
    e.terminalClaimed = true;
    this.executions.delete(e.executionId);
    const expected: ExpectedVersion = e.recordedStart ? 0 : 'no_stream';
    const ref = this.executionRef(e, c);
    if (end === 'timeout') {
      await this.appendExecution(e.executionId, ExecutionTimedOut, 'end', { ...ref, timeoutMs: e.timeoutMs }, expected);
    } else if (end === 'suspended' || end === 'cancelled' || end === 'superseded') {
      await this.appendExecution(e.executionId, ExecutionAborted, 'end', { ...ref, reason: end, abortedAtMs: Date.now() }, expected);
    } else {
      await this.appendExecution(
        e.executionId,
        ExecutionFailed,
        'end',
        {
          ...ref,
          reason: 'agent-restart',
          retryable: true,
          stderrTail: 'the container-manager stopped while the task ran',
          durationMs: Math.max(0, Date.now() - e.startedAtMs),
        },
        expected,
      );
    }
  }

  private async failWithoutContainer(
    d: Dispatch,
    reason: 'input-missing' | 'image-missing' | 'docker-error',
    retryable: boolean,
    message: string,
  ): Promise<void> {
    this.log.warn(`execution ${d.executionId} failed (${reason}): ${message}`);
    await this.appendExecution(
      d.executionId,
      ExecutionFailed,
      'end',
      {
        executionId: d.executionId,
        taskId: d.taskId,
        attempt: d.attempt,
        nodeId: this.nodeId,
        walletId: d.walletId,
        functionId: d.functionId,
        reason,
        retryable,
        stderrTail: message.slice(0, STDERR_TAIL_MAX),
        durationMs: 0,
      },
      'no_stream',
    );
  }

  // --- sampling --------------------------------------------------------------------------------

  private sampleAll(): void {
    if (this.crashed) return;
    for (const c of this.containers.values()) {
      if (c.status !== 'stopping') void this.sample(c, false);
    }
  }

  /**
   * Reads the container's counters and records the window since the last reading. Reads are
   * serialized per container (the cursor moves in order) and so are the appends (seq order).
   */
  private sample(c: ContainerState, final: boolean): Promise<void> {
    c.readChain = c.readChain
      .then(async () => {
        if (c.finalTaken || this.crashed) return;
        const reading = await this.engine.readCounters(c.dockerId, c.cgroup);
        const now = Date.now();
        let next: { window: SampleWindow; cursor: SampleCursor };
        if (reading) next = nextWindow(c.cursor, reading, now);
        else if (final) next = closingWindow(c.cursor, now);
        else return;
        if (final) c.finalTaken = true;
        else this.engine.resetMemoryMax(c.cgroup);
        c.cursor = next.cursor;
        const w = next.window;
        const data: EventData<typeof ResourceSampled> = {
          sampleId: eventId(c.containerId, w.seq),
          ...this.containerRef(c),
          seq: w.seq,
          taskId: c.execution?.taskId,
          windowStartMs: w.windowStartMs,
          windowEndMs: w.windowEndMs,
          cpuNanos: w.cpuNanos,
          cpuNanosTotal: w.cpuNanosTotal,
          memoryBytesAvg: w.memoryBytesAvg,
          memoryBytesMax: w.memoryBytesMax,
          cpuLimitMillis: c.cpuMillis,
          memoryLimitBytes: c.memoryBytes,
          final,
        };
        if (data.taskId === undefined) delete data.taskId;
        c.appendChain = c.appendChain.then(() =>
          this.appendWithRetry(streamName('usage', c.containerId), [eventOf(ResourceSampled, data.sampleId, data)], w.seq === 1 ? 'no_stream' : w.seq - 2).then(
            () => undefined,
            (err) => this.log.error(`sample ${data.sampleId} not recorded: ${(err as Error)?.message ?? err}`),
          ),
        );
      })
      .catch((err) => this.log.error(`sampling ${c.containerId}: ${(err as Error)?.message ?? err}`));
    return c.readChain;
  }

  // --- restart safety --------------------------------------------------------------------------

  /**
   * Brings the agent in line with Docker and the log after a (re)start: containers of this node
   * that the log says are stopped, or that are not running, are removed; a container that was
   * running a task is stopped and its execution reported failed (`agent-restart`); an idle one is
   * adopted and keeps sampling from its last recorded counter, so no CPU is counted twice or lost.
   */
  async reconcile(): Promise<void> {
    const own = await this.engine.listOwn(this.nodeId);
    for (const o of own) {
      if (this.containers.has(o.containerId)) continue;
      const history = await this.store.read(streamName('container', o.containerId));
      const startedEvent = history.find((e) => e.type === 'ContainerStarted');
      if (!startedEvent || history.some((e) => e.type === 'ContainerStopped')) {
        await this.engine.remove(o.dockerId);
        continue;
      }
      const s = startedEvent.data as EventData<typeof ContainerStarted>;
      let cpuMillis = s.cpuMillis;
      let memoryBytes = s.memoryBytes;
      const applied = new Set<string>();
      for (const e of history) {
        if (e.type !== 'ContainerResized') continue;
        const r = e.data as EventData<typeof ContainerResized>;
        cpuMillis = r.toCpuMillis;
        memoryBytes = r.toMemoryBytes;
        applied.add(r.decisionId);
      }
      const inspect = await this.engine.inspect(o.dockerId);
      cpuMillis = cpuMillisOf(inspect?.HostConfig?.CpuQuota, inspect?.HostConfig?.CpuPeriod) ?? cpuMillis;
      const usage = await this.store.read(streamName('usage', o.containerId));
      const last = usage.length ? (usage[usage.length - 1].data as EventData<typeof ResourceSampled>) : undefined;
      const cgroup = this.engine.cgroupPaths(o.dockerId);
      const now = await this.engine.readCounters(o.dockerId, cgroup);
      const cursor: SampleCursor = last
        ? { seq: last.seq, cpuNanosTotal: last.cpuNanosTotal ?? now?.cpuNanosTotal ?? 0, atMs: last.windowEndMs, memoryBytes: last.memoryBytesAvg }
        : { seq: 0, cpuNanosTotal: 0, atMs: s.startedAtMs, memoryBytes: 0 };
      const c: ContainerState = {
        containerId: o.containerId,
        dockerId: o.dockerId,
        walletId: s.walletId,
        functionId: s.functionId,
        image: s.image,
        cpuMillis,
        memoryBytes,
        cpuMinMillis: s.cpuMinMillis,
        cpuMaxMillis: s.cpuMaxMillis,
        version: history.length - 1,
        status: 'idle',
        cgroup,
        cursor,
        readChain: Promise.resolve(),
        appendChain: Promise.resolve(),
        streamChain: Promise.resolve(),
        finalTaken: last?.final === true,
        appliedDecisions: applied,
      };
      this.containers.set(c.containerId, c);
      const marker = o.running ? await this.engine.readExecutionMarker(o.dockerId, this.config.TASK_USER).catch(() => undefined) : undefined;
      if (!o.running || last?.final) {
        await this.stopContainer(c, 'orphan');
        continue;
      }
      if (marker) {
        await this.resolveInterruptedExecution(marker, c);
        await this.stopContainer(c, 'orphan');
        continue;
      }
      this.log.log(`adopted idle container ${c.containerId} (${c.walletId}/${c.functionId})`);
      this.scheduleIdleStop(c);
    }
    this.reconciled = true;
    this.dockerError = undefined;
  }

  /** An execution that was running when the agent died: report it failed, unless it already ended. */
  private async resolveInterruptedExecution(executionId: string, c: ContainerState): Promise<void> {
    const history = await this.store.read(streamName('execution', executionId)).catch(() => []);
    if (history.length === 0 || history.some((e) => TERMINAL_TYPES.has(e.type))) return;
    const s = history.find((e) => e.type === 'ExecutionStarted')?.data as EventData<typeof ExecutionStarted> | undefined;
    if (!s) return;
    await this.appendExecution(
      executionId,
      ExecutionFailed,
      'end',
      {
        ...s,
        containerId: c.containerId,
        reason: 'agent-restart',
        retryable: true,
        stderrTail: 'the container-manager restarted while the task ran',
        durationMs: Math.max(0, Date.now() - s.startedAtMs),
      },
      history.length - 1,
    );
  }

  // --- event writing ---------------------------------------------------------------------------

  private containerRef(c: ContainerState) {
    return { containerId: c.containerId, nodeId: this.nodeId, walletId: c.walletId, functionId: c.functionId };
  }

  private executionRef(e: ExecutionState, c: ContainerState) {
    return { executionId: e.executionId, taskId: e.taskId, attempt: e.attempt, ...this.containerRef(c) };
  }

  private appendExecution<D extends EventDefinition>(
    executionId: string,
    definition: D,
    suffix: 'started' | 'end',
    data: EventData<D>,
    expected: ExpectedVersion,
  ): Promise<void> {
    // One id for every terminal event of an execution: at most one of them can ever be stored.
    const stream = streamName('execution', executionId);
    const event = eventOf(definition, eventId(executionId, suffix), data);
    return this.appendWithRetry(stream, [event], expected).then(
      () => undefined,
      async (err) => {
        if (err instanceof ConcurrencyError && suffix === 'end') {
          // The start was recorded concurrently (e.g. an abort raced the start): end after it, unless ended already.
          const history = await this.store.read(stream);
          if (history.some((e) => TERMINAL_TYPES.has(e.type))) return;
          await this.appendWithRetry(stream, [event], history.length - 1);
          return;
        }
        if (err instanceof ConcurrencyError) {
          this.log.warn(`execution ${executionId}: ${definition.type} not recorded, the stream moved on (${err.message})`);
          return;
        }
        throw err;
      },
    );
  }

  private appendContainer<D extends EventDefinition>(c: ContainerState, definition: D, id: string, data: EventData<D>): Promise<void> {
    const next = c.streamChain.then(async () => {
      const expected = c.version < 0 ? 'no_stream' : c.version;
      const result = await this.appendWithRetry(streamName('container', c.containerId), [eventOf(definition, id, data)], expected);
      c.version = result.nextExpectedVersion;
    });
    c.streamChain = next.catch((err) => this.log.error(`container ${c.containerId}: ${definition.type} not recorded: ${(err as Error)?.message ?? err}`));
    return next;
  }

  private async appendWithRetry(stream: string, events: Parameters<EventStore['append']>[1], expected: ExpectedVersion) {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.store.append(stream, events, expected);
      } catch (err) {
        if (err instanceof ConcurrencyError || attempt >= APPEND_ATTEMPTS || (err as Error)?.name === 'ContractError') throw err;
        await new Promise((r) => setTimeout(r, 100 * 2 ** (attempt - 1)));
      }
    }
  }
}
