import { Logger } from '@nestjs/common';
import { messageOf } from '@mesh/common';
import { OPERATOR_OWNER, type EventData, type ScalingDecided, type TaskDispatched } from '@mesh/contracts';
import type { TaskOptions, TaskRun } from './docker/capture';
import type { DockerEngine } from './docker/docker-engine';
import { newContainerId } from './docker/sandbox';
import type { TenantNetworks } from './docker/tenant-network';
import { initialContainerState, type StopReason } from './domain/container-decider';
import type { ExecutionCommand } from './domain/execution-decider';
import { guardResize, type NodeCapacity } from './domain/resize-guard';
import { initialCursor } from './domain/sample-window';
import type { ContainerHandler } from './container.handler';
import type { ExecutionHandler } from './execution.handler';
import { fatal } from './fatal';
import { STOPPED_DETAIL, type ExecutionEnd, type LiveContainer, type LiveExecution, type NodeState } from './node-state';
import type { Sampler } from './sampler';

export interface PoolConfig {
  idleTimeoutMs: number;
  pidsLimit: number;
  workTmpfsBytes: number;
  taskUser: string;
  /** NODE_CPU_MILLIS / NODE_MEMORY_BYTES: no resize goes beyond them. */
  capacity: NodeCapacity;
}

/**
 * The node's task containers: cold start (ContainerStarted), warm reuse, resize in place
 * (ContainerResized), idle stop and every other stop (closing sample, kill and removal, the end of
 * the execution it ran, ContainerStopped).
 */
export class ContainerPool {
  private readonly log: Logger;

  constructor(
    private readonly node: NodeState,
    private readonly docker: DockerEngine,
    private readonly containers: ContainerHandler,
    private readonly executions: ExecutionHandler,
    private readonly sampler: Sampler,
    private readonly config: PoolConfig,
    private readonly networks: TenantNetworks,
  ) {
    this.log = new Logger(`container-manager:${node.nodeId}`);
  }

  /** An idle container of (wallet, function, image), now busy; undefined when there is none. */
  takeIdle(walletId: string, functionId: string, image: string): LiveContainer | undefined {
    for (const c of this.node.containers.values()) {
      if (c.status === 'idle' && c.walletId === walletId && c.functionId === functionId && c.image === image) {
        c.status = 'busy';
        clearTimeout(c.idleTimer);
        return c;
      }
    }
    return undefined;
  }

  /**
   * Cold start: a new sandboxed container whose main process starts running the first task at once.
   * ContainerStarted is recorded while the script starts (not awaited here; the container handler
   * records it before anything else of this container). Failing to record it is fatal.
   */
  async startCold(d: EventData<typeof TaskDispatched>, task: TaskOptions): Promise<{ container: LiveContainer; run: TaskRun }> {
    const containerId = newContainerId();
    const fn = d.function;
    const t0 = Date.now();
    const { dockerId, run } = await this.docker.createAndStartWithTask(
      {
        nodeId: this.node.nodeId,
        containerId,
        walletId: d.walletId,
        functionId: d.functionId,
        image: fn.image,
        cpuMillis: fn.cpuInitialMillis,
        memoryBytes: fn.memoryBytes,
        network: fn.network ? await this.networks.ensure(d.tenantId ?? OPERATOR_OWNER) : undefined,
        pidsLimit: this.config.pidsLimit,
        workTmpfsBytes: this.config.workTmpfsBytes,
        user: this.config.taskUser,
      },
      task,
    );
    const coldStartMs = Date.now() - t0;
    this.node.dockerError = undefined;
    const c: LiveContainer = {
      containerId,
      dockerId,
      walletId: d.walletId,
      functionId: d.functionId,
      image: fn.image,
      cpuMillis: fn.cpuInitialMillis,
      memoryBytes: fn.memoryBytes,
      cpuMinMillis: fn.cpuMinMillis,
      cpuMaxMillis: fn.cpuMaxMillis,
      stream: { state: initialContainerState(), version: -1 },
      status: 'busy',
      cgroup: this.docker.cgroupPaths(dockerId),
      // The counter of a new container starts at 0 at its start: the first window covers it all.
      cursor: initialCursor({ cpuNanosTotal: 0, memoryBytes: 0 }, t0),
      finalTaken: false,
      appliedDecisions: new Set(),
    };
    this.node.containers.set(containerId, c);
    const started = {
      ...this.node.containerRef(c),
      dockerId,
      image: fn.image,
      cpuMillis: c.cpuMillis,
      memoryBytes: c.memoryBytes,
      cpuMaxMillis: c.cpuMaxMillis,
      cpuMinMillis: c.cpuMinMillis,
      coldStartMs,
      startedAtMs: t0,
    };
    void this.containers.handle(c, { kind: 'start', started }).catch((err) => fatal(`container ${containerId}: ContainerStarted not recorded`, err));
    return { container: c, run };
  }

  /** A container found running at start-up, adopted as idle (Reconciler). */
  adopt(c: LiveContainer): void {
    this.node.containers.set(c.containerId, c);
  }

  scheduleIdleStop(c: LiveContainer): void {
    clearTimeout(c.idleTimer);
    c.idleTimer = setTimeout(() => {
      if (c.status === 'idle') this.stopInBackground(c, 'idle');
    }, this.config.idleTimeoutMs);
  }

  /** A stop started by a timer: nobody awaits it, so a failure to record it is fatal. */
  stopInBackground(c: LiveContainer, reason: StopReason, executionEnd?: ExecutionEnd): void {
    this.stop(c, reason, executionEnd).catch((err) => fatal(`stop of container ${c.containerId} (${reason})`, err));
  }

  /**
   * Stops and removes a container: take the last sample, kill and remove it, then record the end
   * of its execution (if one ran and nobody else ended it) and ContainerStopped. Idempotent. CPU
   * used between the last reading and the kill (a few ms at most, none for an idle container) is not billed.
   */
  stop(c: LiveContainer, reason: StopReason, executionEnd?: ExecutionEnd): Promise<void> {
    if (c.stopping) return c.stopping;
    c.status = 'stopping';
    clearTimeout(c.idleTimer);
    const e = c.execution;
    const endsExecution = e !== undefined && e.ending === undefined;
    if (endsExecution) {
      e.ending = executionEnd ?? 'agent-restart';
      clearTimeout(e.timer);
    }
    c.stopping = (async () => {
      // The last reading, then SIGKILL and removal at once. (No `docker pause` to freeze the
      // counters first: on cgroup v1 a frozen container cannot be killed and `rm -f` then hangs.)
      await this.sampler.sample(c, true);
      await this.docker.remove(c.dockerId).catch((err) => this.log.error(`remove ${c.containerId}: ${messageOf(err)}`));
      const stoppedAtMs = Date.now();
      if (endsExecution) await this.endExecution(e, executionEnd ?? 'agent-restart');
      await this.sampler.recorded(c.containerId);
      await this.containers.handle(c, { kind: 'stop', stopped: { ...this.node.containerRef(c), reason, stoppedAtMs } });
      this.node.containers.delete(c.containerId);
    })();
    return c.stopping;
  }

  /** The terminal event of an execution the node ended itself (timeout, abort, shutdown). */
  private async endExecution(e: LiveExecution, end: ExecutionEnd): Promise<void> {
    this.node.executions.delete(e.ref.executionId);
    const id = e.ref.executionId;
    if (end === 'timeout') {
      e.stream = await this.executions.handle(id, { kind: 'end', end: { type: 'ExecutionTimedOut', data: { ...e.ref, timeoutMs: e.timeoutMs } } }, e.stream);
    } else if (end === 'agent-restart') {
      const interrupt: ExecutionCommand = { kind: 'interrupt', detail: STOPPED_DETAIL, nowMs: Date.now(), unstarted: { ...e.ref, startedAtMs: e.startedAtMs } };
      e.stream = await this.executions.handle(id, interrupt, e.stream);
    } else {
      e.stream = await this.executions.handle(
        id,
        { kind: 'end', end: { type: 'ExecutionAborted', data: { ...e.ref, reason: end, abortedAtMs: Date.now() } } },
        e.stream,
      );
    }
  }

  /** A ScalingDecided for one of our containers: apply in place, record what was applied. */
  async resize(decided: EventData<typeof ScalingDecided>): Promise<void> {
    const c = this.node.containers.get(decided.containerId);
    // The decision is clamped here, where it is applied: the event's author is not trusted with the limits.
    const verdict = guardResize(decided, c, this.config.capacity);
    if (!verdict.apply) {
      this.log.warn(`resize ${decided.decisionId} of ${decided.containerId} refused: ${verdict.refused}`);
      return;
    }
    if (!c || c.status === 'stopping' || c.appliedDecisions.has(decided.decisionId)) return;
    if (verdict.clamped.length > 0) this.log.warn(`resize ${decided.decisionId} of ${c.containerId}: ${verdict.clamped.join('; ')}`);
    const d = { decisionId: decided.decisionId, toCpuMillis: verdict.toCpuMillis, toMemoryBytes: verdict.toMemoryBytes };
    c.appliedDecisions.add(d.decisionId);
    const fromCpuMillis = c.cpuMillis;
    const fromMemoryBytes = c.memoryBytes;
    const t0 = process.hrtime.bigint();
    let toMemoryBytes = d.toMemoryBytes;
    try {
      await this.docker.updateLimits(c.dockerId, d.toCpuMillis, d.toMemoryBytes);
    } catch (err) {
      if (this.isStopping(c) || !(await this.docker.inspect(c.dockerId).catch(() => undefined))) return;
      // Typically a memory limit below what the container uses now: apply the CPU part alone and
      // record the memory that stayed, so the scaler sees its decision answered.
      this.log.warn(`resize ${d.decisionId} of ${c.containerId}: memory ${d.toMemoryBytes} refused (${messageOf(err)}); applying CPU only`);
      try {
        await this.docker.updateLimits(c.dockerId, d.toCpuMillis, c.memoryBytes);
        toMemoryBytes = c.memoryBytes;
      } catch (again) {
        c.appliedDecisions.delete(d.decisionId);
        this.log.warn(`resize ${d.decisionId} of ${c.containerId} refused by Docker: ${messageOf(again)}`);
        return;
      }
    }
    const applyMs = Number((process.hrtime.bigint() - t0) / 1_000_000n);
    c.cpuMillis = d.toCpuMillis;
    c.memoryBytes = toMemoryBytes;
    await this.containers.handle(c, {
      kind: 'resize',
      resized: {
        ...this.node.containerRef(c),
        decisionId: d.decisionId,
        fromCpuMillis,
        toCpuMillis: d.toCpuMillis,
        fromMemoryBytes,
        toMemoryBytes,
        applyMs,
        appliedAtMs: Date.now(),
      },
    });
  }

  /** Read again after an await: another path may have started stopping the container meanwhile. */
  private isStopping(c: LiveContainer): boolean {
    return c.status === 'stopping';
  }
}
