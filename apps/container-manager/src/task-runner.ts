import { Logger } from '@nestjs/common';
import type { NatsConnection } from 'nats';
import { messageOf } from '@mesh/common';
import { OPERATOR_OWNER, type EventData, type TaskDispatched } from '@mesh/contracts';
import type { TaskOptions, TaskRun, TaskRunResult } from './docker/capture';
import { DockerUnavailableError, ImageMissingError, type DockerEngine } from './docker/docker-engine';
import type { TerminalExecutionEvent } from './domain/execution-decider';
import { imageRefusal } from './domain/image-allow-list';
import { classifyScriptEnd } from './domain/script-end';
import { NetworkIsolationError } from './docker/tenant-network';
import type { ContainerHandler } from './container.handler';
import type { ContainerPool } from './container-pool';
import { NEW_EXECUTION, type ExecutionHandler } from './execution.handler';
import { fatal } from './fatal';
import type { LiveContainer, LiveExecution, NodeState } from './node-state';
import { InputMissingError, readTaskInput } from './storage/object-io';
import { OutputRefusedError, OutputStore } from './storage/output-store';
import { packTar, unpackTar } from './storage/tar';

type Dispatch = EventData<typeof TaskDispatched>;

const STDERR_TAIL_MAX = 4096;

/** Whose buckets a task reads and writes: its tenant's, or the operator's (no tenant). */
const ownerOf = (d: Dispatch) => d.tenantId ?? OPERATOR_OWNER;

export interface RunnerConfig {
  inputMaxBytes: number;
  outputCapBytes: number;
  outputDirMaxBytes: number;
  taskUser: string;
  objectTtlMs: number;
  outputQuotaBytesPerWallet: number;
  outputQuotaRecountMs: number;
  /** TENANT_BUCKET_MAX_BYTES: max_bytes of an output bucket created by this node. */
  tenantBucketMaxBytes: number;
  /** MESH_BASE_IMAGE + CONTAINER_IMAGES_ALLOWED: the only images a task may run in. */
  imagesAllowed: ReadonlySet<string>;
}

/**
 * Runs one dispatched task: reads its input, reuses a warm container or starts one cold, records
 * ExecutionStarted once the script runs, and in the background waits for the script, collects
 * stdout/stderr and the output folder into the object store and records how it ended. Each
 * execution gets exactly one terminal event (the execution decider), whoever ends it.
 */
export class TaskRunner {
  private readonly log: Logger;
  /** Executions whose end is being collected and recorded in the background. */
  private readonly finishing = new Set<Promise<void>>();
  private readonly outputs: OutputStore;

  constructor(
    private readonly node: NodeState,
    private readonly nc: NatsConnection,
    private readonly docker: DockerEngine,
    private readonly pool: ContainerPool,
    private readonly containers: ContainerHandler,
    private readonly executions: ExecutionHandler,
    private readonly config: RunnerConfig,
  ) {
    this.log = new Logger(`container-manager:${node.nodeId}`);
    this.outputs = new OutputStore(nc, {
      ttlMs: config.objectTtlMs,
      quotaBytesPerWallet: config.outputQuotaBytesPerWallet,
      recountMs: config.outputQuotaRecountMs,
      bucketMaxBytes: config.tenantBucketMaxBytes,
    });
  }

  /** Resolves once the script runs (ExecutionStarted recorded) or the attempt failed before it could. */
  async run(d: Dispatch): Promise<void> {
    // The dispatch is the scheduler's, but what it may make this node do is checked here, where it is applied.
    const refusal = imageRefusal(d.function.image, this.config.imagesAllowed);
    if (refusal !== undefined) return this.failWithoutContainer(d, 'image-missing', false, refusal);
    let input: Buffer;
    try {
      input = await readTaskInput(this.nc, d.input, ownerOf(d), this.config.inputMaxBytes, this.config.objectTtlMs);
    } catch (err) {
      if (err instanceof InputMissingError) return this.failWithoutContainer(d, 'input-missing', false, err.message);
      throw err;
    }
    const jobTar = await packTar({ 'job/': null, 'job/script': Buffer.from(d.function.script, 'utf8'), 'job/input': input, 'job/out/': null });
    const task = this.taskOptions(d, jobTar);
    let container = this.pool.takeIdle(d.walletId, d.functionId, d.function.image);
    const warm = container !== undefined;
    let coldRun: TaskRun | undefined;
    if (!container) {
      try {
        ({ container, run: coldRun } = await this.pool.startCold(d, task));
      } catch (err) {
        if (err instanceof ImageMissingError) return this.failWithoutContainer(d, 'image-missing', false, err.message);
        // Never run a network-enabled task without its isolation: not retried here, the operator has to fix the node.
        if (err instanceof NetworkIsolationError) return this.failWithoutContainer(d, 'docker-error', false, err.message);
        this.node.dockerError = messageOf(err);
        const message = err instanceof DockerUnavailableError ? err.message : `Docker refused to start the container: ${this.node.dockerError}`;
        return this.failWithoutContainer(d, 'docker-error', true, message);
      }
    }
    await this.runExecution(container, d, task, warm, coldRun);
  }

  private taskOptions(d: Dispatch, jobTar: Buffer): TaskOptions {
    return {
      executionId: d.executionId,
      jobTar,
      capBytes: this.config.outputCapBytes,
      user: this.config.taskUser,
      env: [`MESH_EXECUTION_ID=${d.executionId}`, `MESH_TASK_ID=${d.taskId}`, `MESH_ATTEMPT=${d.attempt}`, `MESH_FUNCTION_ID=${d.functionId}`],
    };
  }

  private async runExecution(c: LiveContainer, d: Dispatch, task: TaskOptions, warm: boolean, coldRun?: TaskRun): Promise<void> {
    const e: LiveExecution = {
      ref: { executionId: d.executionId, taskId: d.taskId, attempt: d.attempt, ...this.node.containerRef(c) },
      owner: ownerOf(d),
      timeoutMs: d.function.timeoutMs,
      startedAtMs: Date.now(),
      warm,
      stream: NEW_EXECUTION,
    };
    this.node.executions.set(e.ref.executionId, e);
    c.execution = e;
    c.status = 'busy';
    clearTimeout(c.idleTimer);
    let run: TaskRun;
    if (coldRun) {
      // A new cgroup: its OOM kill counter starts at 0.
      e.oomKillsBefore = 0;
      run = coldRun;
    } else {
      e.oomKillsBefore = (await this.docker.readCounters(c.dockerId, c.cgroup, true))?.oomKills;
      try {
        run = await this.docker.startTask(c.dockerId, task);
      } catch (err) {
        e.ending = 'docker-error';
        const stderrTail = `could not start the script: ${messageOf(err)}`.slice(0, STDERR_TAIL_MAX);
        await this.end(e, { type: 'ExecutionFailed', data: { ...e.ref, reason: 'docker-error', retryable: true, stderrTail, durationMs: 0 } });
        this.node.executions.delete(e.ref.executionId);
        await this.pool.stop(c, 'error');
        return;
      }
    }
    e.timer = setTimeout(() => this.pool.stopInBackground(c, 'timeout', 'timeout'), e.timeoutMs);
    const started = await run.started;
    if (started && e.ending === undefined) {
      e.startedAtMs = Date.now();
      // ContainerStarted first: the container stream is complete before its first execution shows up.
      await this.containers.settled(c.containerId);
      e.stream = await this.executions.handle(e.ref.executionId, { kind: 'start', started: { ...e.ref, startedAtMs: e.startedAtMs, warm } }, e.stream);
    }
    const finishing = this.finishExecution(c, e, run).catch((err) => fatal(`execution ${e.ref.executionId}: its end was not recorded`, err));
    this.finishing.add(finishing);
    void finishing.finally(() => this.finishing.delete(finishing));
  }

  /** Resolves once every execution whose script ended has its end recorded (shutdown waits for it before NodeLeft). */
  async drained(): Promise<void> {
    await Promise.all([...this.finishing]);
  }

  private async finishExecution(c: LiveContainer, e: LiveExecution, run: TaskRun): Promise<void> {
    const result = await run.done;
    clearTimeout(e.timer);
    if (e.ending !== undefined) return;
    e.ending = 'script';
    const durationMs = Math.max(0, Date.now() - e.startedAtMs);
    const counters = result.exitCode === 0 ? undefined : await this.docker.readCounters(c.dockerId, c.cgroup, true);
    let oom = counters?.oomKills !== undefined && e.oomKillsBefore !== undefined && counters.oomKills > e.oomKillsBefore;
    const after = result.exitCode === 0 ? undefined : await this.docker.containerAfterRun(c.dockerId);
    if (!oom && result.exitCode === 137) oom = after?.oomKilled === true;
    const verdict = classifyScriptEnd({ exitCode: result.exitCode, container: after?.state ?? 'running', oomKilled: oom });
    if (verdict.by === 'platform') {
      // Not the user's failure: retryable, no exit code (the scheduler requeues it as an infrastructure fault).
      const stderrTail = `killed by the platform, not by the script: ${verdict.detail}`;
      this.log.warn(`execution ${e.ref.executionId}: ${stderrTail}`);
      await this.end(e, { type: 'ExecutionFailed', data: { ...e.ref, reason: 'docker-error', retryable: true, stderrTail, durationMs } });
      this.node.executions.delete(e.ref.executionId);
      await this.pool.stop(c, 'error');
      return;
    }

    let files: Record<string, Buffer> = {};
    let filesTruncated = false;
    // Why the output is not stored (too large, over the wallet's quota): the execution then fails with it, nothing half-written.
    let refused: string | undefined;
    try {
      const collected = await this.docker.collectOutput(c.dockerId, this.config.taskUser, this.config.outputDirMaxBytes);
      if (collected.tar) files = await unpackTar(collected.tar);
      else
        refused = `output not stored: the output folder is ${collected.bytes} bytes (as a tar), more than OUTPUT_DIR_MAX_BYTES=${this.config.outputDirMaxBytes}`;
    } catch (err) {
      this.log.warn(`output folder of ${e.ref.executionId} not collected: ${messageOf(err)}`);
      filesTruncated = true;
    }
    const outputRef =
      refused === undefined ? await this.storeOutput(e, result, verdict.outcome === 'failed' ? verdict.exitCode : 0, filesTruncated, files) : undefined;
    if (outputRef !== undefined && 'refused' in outputRef) refused = outputRef.refused;
    if (refused !== undefined) this.log.warn(`execution ${e.ref.executionId}: ${refused}`);
    // The container is free again before the result is announced, so the next dispatch finds it warm.
    this.node.executions.delete(e.ref.executionId);
    c.execution = undefined;
    if (c.status === 'busy') {
      c.status = 'idle';
      this.pool.scheduleIdleStop(c);
    }
    const stored = outputRef !== undefined && 'bucket' in outputRef ? outputRef : undefined;
    if (verdict.outcome === 'succeeded' && result.started && stored !== undefined) {
      await this.end(e, { type: 'ExecutionSucceeded', data: { ...e.ref, outputRef: stored, durationMs } });
    } else {
      const exitCode = verdict.outcome === 'failed' ? verdict.exitCode : 0;
      const prefix = (refused !== undefined ? `${refused}\n` : '') + (oom ? `killed by the kernel: out of memory (limit ${c.memoryBytes} bytes)\n` : '');
      const keep = STDERR_TAIL_MAX - 100 - prefix.length;
      const stderrTail = (prefix + (keep > 0 ? result.stderrTail.slice(-keep) : '')).slice(0, STDERR_TAIL_MAX);
      await this.end(e, {
        type: 'ExecutionFailed',
        data: { ...e.ref, exitCode, reason: oom ? 'oom' : 'exit-code', retryable: false, stderrTail, durationMs, ...(stored ? { outputRef: stored } : {}) },
      });
    }
  }

  /** Stores the output (checked against the wallet's quota on its packed size first), or says why it was refused. */
  private async storeOutput(
    e: LiveExecution,
    result: TaskRunResult,
    exitCode: number,
    filesTruncated: boolean,
    files: Record<string, Buffer>,
  ): Promise<{ bucket: string; key: string } | { refused: string }> {
    try {
      return await this.outputs.write(e.owner, e.ref.walletId, e.ref.executionId, {
        manifest: {
          format: 1,
          executionId: e.ref.executionId,
          exitCode,
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
    } catch (err) {
      if (err instanceof OutputRefusedError) return { refused: err.message };
      throw err;
    }
  }

  private async end(e: LiveExecution, end: TerminalExecutionEvent): Promise<void> {
    e.stream = await this.executions.handle(e.ref.executionId, { kind: 'end', end }, e.stream);
  }

  private async failWithoutContainer(
    d: Dispatch,
    reason: 'input-missing' | 'image-missing' | 'docker-error',
    retryable: boolean,
    message: string,
  ): Promise<void> {
    this.log.warn(`execution ${d.executionId} failed (${reason}): ${message}`);
    const ref = { executionId: d.executionId, taskId: d.taskId, attempt: d.attempt, nodeId: this.node.nodeId, walletId: d.walletId, functionId: d.functionId };
    const failed: TerminalExecutionEvent = {
      type: 'ExecutionFailed',
      data: { ...ref, reason, retryable, stderrTail: message.slice(0, STDERR_TAIL_MAX), durationMs: 0 },
    };
    await this.executions.handle(d.executionId, { kind: 'end', end: failed });
  }
}
