import { Logger } from '@nestjs/common';
import { messageOf } from '@mesh/common';
import { isEvent, ResourceSampled, streamName, type EventData, type RecordedEvent } from '@mesh/contracts';
import type { EventStore } from '@mesh/eventstore/port';
import type { DockerEngine, OwnContainer } from './docker/docker-engine';
import { cpuMillisOf } from './docker/sandbox';
import type { SampleCursor } from './domain/sample-window';
import type { ContainerHandler } from './container.handler';
import type { ContainerPool } from './container-pool';
import type { ExecutionHandler } from './execution.handler';
import { RESTARTED_DETAIL, type LiveContainer, type NodeState } from './node-state';

/**
 * Restart safety: brings the node in line with Docker and the log after a (re)start. Containers of
 * this node that the log does not know or says are stopped are removed; one that is not running
 * (or whose last sample was the final one) is stopped as `orphan`; one that was running a task
 * (its last execution has no recorded end) is stopped and the execution fails with `agent-restart`; an idle one
 * is adopted and keeps sampling from its last recorded counter, so no CPU is counted twice or lost.
 */
export class Reconciler {
  private readonly log: Logger;

  constructor(
    private readonly node: NodeState,
    private readonly store: EventStore,
    private readonly docker: DockerEngine,
    private readonly pool: ContainerPool,
    private readonly containers: ContainerHandler,
    private readonly executions: ExecutionHandler,
  ) {
    this.log = new Logger(`container-manager:${node.nodeId}`);
  }

  async reconcile(): Promise<void> {
    const own = await this.docker.listOwn(this.node.nodeId);
    for (const o of own) {
      if (!this.node.containers.has(o.containerId)) await this.reconcileOne(o);
    }
    this.node.reconciled = true;
    this.node.dockerError = undefined;
  }

  private async reconcileOne(o: OwnContainer): Promise<void> {
    const stream = await this.containers.load(o.containerId);
    const s = stream.state.started;
    if (!s || stream.state.status === 'stopped') {
      await this.docker.remove(o.dockerId);
      return;
    }
    const inspect = await this.docker.inspect(o.dockerId);
    const cpuMillis = cpuMillisOf(inspect?.HostConfig?.CpuQuota, inspect?.HostConfig?.CpuPeriod) ?? stream.state.cpuMillis;
    const last = lastSample(await this.store.read(streamName('usage', o.containerId)));
    const cgroup = this.docker.cgroupPaths(o.dockerId);
    const now = await this.docker.readCounters(o.dockerId, cgroup);
    const cursor: SampleCursor = last
      ? { seq: last.seq, cpuNanosTotal: last.cpuNanosTotal ?? now?.cpuNanosTotal ?? 0, atMs: last.windowEndMs, memoryBytes: last.memoryBytesAvg }
      : { seq: 0, cpuNanosTotal: 0, atMs: s.startedAtMs, memoryBytes: 0 };
    const c: LiveContainer = {
      containerId: o.containerId,
      dockerId: o.dockerId,
      walletId: s.walletId,
      functionId: s.functionId,
      image: s.image,
      cpuMillis,
      memoryBytes: stream.state.memoryBytes,
      cpuMinMillis: s.cpuMinMillis,
      cpuMaxMillis: s.cpuMaxMillis,
      stream,
      status: 'idle',
      cgroup,
      cursor,
      finalTaken: last?.final === true,
      appliedDecisions: new Set(stream.state.appliedDecisions),
    };
    this.pool.adopt(c);
    const marker = o.running ? await this.lastExecution(o.dockerId) : undefined;
    if (!o.running || last?.final) {
      await this.pool.stop(c, 'orphan');
      return;
    }
    // The execution this node started last in the container (from records the task cannot touch);
    // if its end is recorded, the container is idle and can be adopted.
    if (marker && !(await this.failInterrupted(marker))) {
      await this.pool.stop(c, 'orphan');
      return;
    }
    this.log.log(`adopted idle container ${c.containerId} (${c.walletId}/${c.functionId})`);
    this.pool.scheduleIdleStop(c);
  }

  /** The execution this node started last in a container: the run in progress (Docker's exec record), else the marker (or label). */
  private async lastExecution(dockerId: string): Promise<string | undefined> {
    const running = await this.docker.runningExecution(dockerId).catch(() => undefined);
    return running ?? (await this.docker.readExecutionMarker(dockerId).catch(() => undefined));
  }

  /**
   * The execution last started in a container: fail it (agent-restart) unless it already ended.
   * Resolves to true when it had ended (its container is then simply idle).
   */
  private async failInterrupted(executionId: string): Promise<boolean> {
    let known;
    try {
      known = await this.executions.load(executionId);
    } catch (err) {
      // The redelivered dispatch of this execution (if any) reports it instead.
      this.log.warn(`execution ${executionId} found interrupted, its stream not readable: ${messageOf(err)}`);
      return false;
    }
    if (known.state.status === 'ended') return true;
    await this.executions.handle(executionId, { kind: 'interrupt', detail: RESTARTED_DETAIL, nowMs: Date.now() }, known);
    return false;
  }
}

function lastSample(usage: RecordedEvent[]): EventData<typeof ResourceSampled> | undefined {
  const last = usage.at(-1);
  return last && isEvent(last, ResourceSampled) ? last.data : undefined;
}
