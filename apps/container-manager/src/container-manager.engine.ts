import { Inject, Injectable, Logger, type BeforeApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import type { NatsConnection } from 'nats';
import { messageOf } from '@mesh/common';
import {
  eventOf,
  heartbeatSubject,
  NodeLeft,
  NodeRegistered,
  nodeHeartbeatSchema,
  NODE_RUNNING_EXECUTIONS_MAX,
  streamName,
  type EventData,
  type NodeHeartbeat,
  type ScalingDecided,
  type StandingChanged,
  type TaskCancelled,
  type TaskDispatched,
} from '@mesh/contracts';
import type { commonEnv, ConfigOf } from '@mesh/config';
import type { EventStore } from '@mesh/eventstore/port';
import { EVENT_STORE, NATS_CONNECTION, SERVICE_CONFIG } from '@mesh/runtime';
import { appendWithRetry } from './append';
import type { ContainerManagerEnv } from './config';
import { ContainerHandler } from './container.handler';
import { ContainerPool } from './container-pool';
import { DockerEngine } from './docker/docker-engine';
import { assertNonRootUser } from './docker/sandbox';
import { TenantNetworks } from './docker/tenant-network';
import { eventId, parseNodeLabels } from './domain/event-ids';
import { parseImageAllowList } from './domain/image-allow-list';
import type { ExecutionCommand } from './domain/execution-decider';
import { isSuperseded } from './domain/superseded';
import { ExecutionHandler, foldExecution } from './execution.handler';
import { NodeDrain } from './node-drain';
import { NodeState, RESTARTED_DETAIL } from './node-state';
import { Reconciler } from './reconciler';
import { Sampler } from './sampler';
import { TaskRunner } from './task-runner';

export type ContainerManagerConfig = ConfigOf<typeof ContainerManagerEnv & typeof commonEnv>;

/** The engines of this process, for the health reply (main.ts); one outside tests. */
export const runningEngines = new Set<ContainerManagerEngine>();
/** While Docker does not answer at start-up, the reconcile is tried again this often. */
const RECONCILE_RETRY_MS = 5000;

/**
 * The node: registers it, beats, routes the consumed events (dispatch, cancel, superseded attempt,
 * resize, suspension) to its collaborators, and leaves cleanly. Only containers labelled with this
 * node's id are ever touched.
 *   TaskRunner       runs a dispatched task (warm or cold) and records how it ended
 *   ContainerPool    the node's containers: start, reuse, resize, idle and other stops
 *   Sampler          ResourceSampled every interval
 *   Reconciler       adopts or stops what Docker still runs after a restart
 *   ExecutionHandler / ContainerHandler   decide and append the execution and container aggregates
 */
@Injectable()
export class ContainerManagerEngine implements OnModuleInit, BeforeApplicationShutdown {
  private readonly log: Logger;
  readonly docker: DockerEngine;
  readonly nodeId: string;
  private readonly node: NodeState;
  private readonly executions: ExecutionHandler;
  private readonly pool: ContainerPool;
  private readonly sampler: Sampler;
  private readonly runner: TaskRunner;
  private readonly reconciler: Reconciler;
  private readonly timers: NodeJS.Timeout[] = [];
  /** The owners' isolated networks of network-enabled functions. */
  readonly networks: TenantNetworks;
  /** Drain requests (any node's, answered here) and this node's own drain. */
  readonly drain: NodeDrain;

  constructor(
    @Inject(EVENT_STORE) private readonly store: EventStore,
    @Inject(NATS_CONNECTION) private readonly nc: NatsConnection,
    @Inject(SERVICE_CONFIG) private readonly config: ContainerManagerConfig,
  ) {
    this.nodeId = config.NODE_ID;
    this.log = new Logger(`container-manager:${config.NODE_ID}`);
    assertNonRootUser(config.TASK_USER);
    this.docker = new DockerEngine(config.DOCKER_SOCKET, config.DOCKER_RETRIES);
    this.node = new NodeState(config.NODE_ID);
    this.networks = new TenantNetworks(this.docker.docker, config.NODE_NETWORK === 'true');
    this.drain = new NodeDrain(store, config.NODE_ID);
    this.executions = new ExecutionHandler(store);
    const containers = new ContainerHandler(store);
    this.sampler = new Sampler(store, this.docker, this.node, config.USAGE_APPEND_RETRY_MS);
    this.pool = new ContainerPool(
      this.node,
      this.docker,
      containers,
      this.executions,
      this.sampler,
      {
        idleTimeoutMs: config.IDLE_TIMEOUT_MS,
        pidsLimit: config.PIDS_LIMIT,
        workTmpfsBytes: config.WORK_TMPFS_BYTES,
        taskUser: config.TASK_USER,
        capacity: { cpuMillis: config.NODE_CPU_MILLIS, memoryBytes: config.NODE_MEMORY_BYTES },
      },
      this.networks,
    );
    this.runner = new TaskRunner(this.node, nc, this.docker, this.pool, containers, this.executions, {
      inputMaxBytes: config.INPUT_MAX_BYTES,
      outputCapBytes: config.OUTPUT_CAP_BYTES,
      outputDirMaxBytes: config.OUTPUT_DIR_MAX_BYTES,
      taskUser: config.TASK_USER,
      objectTtlMs: config.OBJECT_TTL_MS,
      outputQuotaBytesPerWallet: config.OUTPUT_QUOTA_BYTES_PER_WALLET,
      outputQuotaRecountMs: config.OUTPUT_QUOTA_RECOUNT_MS,
      tenantBucketMaxBytes: config.TENANT_BUCKET_MAX_BYTES,
      imagesAllowed: parseImageAllowList(config.MESH_BASE_IMAGE, config.CONTAINER_IMAGES_ALLOWED),
    });
    this.reconciler = new Reconciler(this.node, store, this.docker, this.pool, containers, this.executions);
    runningEngines.add(this);
  }

  // --- lifecycle -------------------------------------------------------------------------------

  async onModuleInit(): Promise<void> {
    const labels = parseNodeLabels(this.config.NODE_LABELS);
    const registered = eventOf(NodeRegistered, eventId('node', this.nodeId, 'up', Date.now()), {
      nodeId: this.nodeId,
      cpuMillis: this.config.NODE_CPU_MILLIS,
      memoryBytes: this.config.NODE_MEMORY_BYTES,
      labels,
      registeredAtMs: Date.now(),
      network: this.config.NODE_NETWORK === 'true',
    });
    await appendWithRetry(this.store, streamName('node', this.nodeId), [registered], 'any');
    await this.drain.resume();
    await this.reconciler.reconcile().catch((err) => {
      this.node.dockerError = messageOf(err);
      this.log.error(`reconcile with Docker failed, retrying in the background: ${this.node.dockerError}`);
    });
    if (!this.node.reconciled) {
      const again = setInterval(() => {
        if (this.node.reconciled) return clearInterval(again);
        this.reconciler.reconcile().then(
          () => clearInterval(again),
          (err) => (this.node.dockerError = messageOf(err)),
        );
      }, RECONCILE_RETRY_MS);
      this.timers.push(again);
    }
    this.timers.push(setInterval(() => this.sampler.sampleAll(), this.config.SAMPLE_INTERVAL_MS));
    this.timers.push(setInterval(() => this.heartbeat(), this.config.NODE_HEARTBEAT_MS));
    this.heartbeat();
  }

  /**
   * Clean shutdown: running executions fail (agent-restart), every container is stopped (shutdown),
   * the results of scripts that had just ended are recorded, then NodeLeft.
   */
  async beforeApplicationShutdown(): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    runningEngines.delete(this);
    await Promise.all([...this.node.containers.values()].map((c) => this.pool.stop(c, 'shutdown', 'agent-restart')));
    await this.runner.drained();
    const left = eventOf(NodeLeft, eventId('node', this.nodeId, 'left', Date.now()), { nodeId: this.nodeId, reason: 'shutdown', leftAtMs: Date.now() });
    await appendWithRetry(this.store, streamName('node', this.nodeId), [left], 'any');
  }

  status(): { dockerError?: string; containers: { containerId: string; status: string; walletId: string; functionId: string }[] } {
    return {
      dockerError: this.node.dockerError,
      containers: [...this.node.containers.values()].map((c) => ({
        containerId: c.containerId,
        status: c.status,
        walletId: c.walletId,
        functionId: c.functionId,
      })),
    };
  }

  /** Health: degraded while the Docker engine does not answer or the start-up reconcile has not run. */
  async health(): Promise<{ status: 'ok' | 'degraded'; details: Record<string, unknown> }> {
    const all = [...this.node.containers.values()];
    const details = {
      nodeId: this.nodeId,
      containers: all.length,
      busy: all.filter((c) => c.status === 'busy').length,
      idle: all.filter((c) => c.status === 'idle').length,
      reconciled: this.node.reconciled,
      ...(this.node.dockerError ? { dockerError: this.node.dockerError } : {}),
    };
    return { status: this.node.dockerError || !this.node.reconciled ? 'degraded' : 'ok', details };
  }

  private heartbeat(): void {
    this.drain.tick(this.node.executions.size);
    const all = [...this.node.containers.values()];
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
      // Every execution this node holds (from the dispatch taken up to its end): the scheduler
      // requeues a task it believes running here that this list has stopped naming.
      runningExecutions: [...this.node.executions.values()]
        .slice(0, NODE_RUNNING_EXECUTIONS_MAX)
        .map((e) => ({ taskId: e.ref.taskId, executionId: e.ref.executionId })),
    };
    try {
      this.nc.publish(heartbeatSubject(this.nodeId), JSON.stringify(nodeHeartbeatSchema.parse(beat)));
    } catch (err) {
      this.log.warn(`heartbeat not sent: ${messageOf(err)}`);
    }
  }

  // --- commands from events --------------------------------------------------------------------

  /** A TaskDispatched: run it here if it is ours and not stale. Resolves once the script runs (or the attempt failed). */
  async dispatch(d: EventData<typeof TaskDispatched>): Promise<void> {
    if (d.nodeId !== this.nodeId) return;
    if (this.node.executions.has(d.executionId)) return;
    // Left by drain: the scheduler requeues what it had placed here (NodeLeft); nothing new starts.
    if (this.drain.left) return;
    // Both reads at once: this is on the path from dispatch to script running.
    const [history, task] = await Promise.all([this.store.read(streamName('execution', d.executionId)), this.store.read(streamName('task', d.taskId))]);
    if (history.length > 0) {
      // Already handled. If it started and never ended while we are not running it, we went away under it.
      const interrupt: ExecutionCommand = { kind: 'interrupt', detail: RESTARTED_DETAIL, nowMs: Date.now() };
      await this.executions.handle(d.executionId, interrupt, foldExecution(d.executionId, history));
      return;
    }
    if (isSuperseded(task, d.attempt)) return;
    await this.runner.run(d);
  }

  /** A TaskCancelled: kill its running execution on this node. */
  async cancel(d: EventData<typeof TaskCancelled>): Promise<void> {
    if (d.nodeId && d.nodeId !== this.nodeId) return;
    const e = d.executionId ? this.node.executions.get(d.executionId) : [...this.node.executions.values()].find((x) => x.ref.taskId === d.taskId);
    if (!e) return;
    const c = this.node.containers.get(e.ref.containerId);
    if (c) await this.pool.stop(c, 'cancelled', 'cancelled');
  }

  /**
   * A TaskRequeued or TaskFailed: if this node still runs that attempt (the scheduler declared the
   * node lost while it was cut off, or gave up waiting for the start, and moved on), kill it; its
   * result would be ignored, and the wallet would pay for it. An attempt that ended here is no
   * longer in `executions`, so the scheduler's answer to our own result changes nothing.
   */
  async superseded(d: { taskId: string; attempt: number }, by: 'TaskRequeued' | 'TaskFailed'): Promise<void> {
    const e = [...this.node.executions.values()].find((x) => x.ref.taskId === d.taskId && x.ref.attempt <= d.attempt);
    if (!e) return;
    const c = this.node.containers.get(e.ref.containerId);
    if (!c) return;
    this.log.warn(`execution ${e.ref.executionId}: the scheduler moved on (${by} for attempt ${d.attempt}); stopping it`);
    await this.pool.stop(c, 'superseded', 'superseded');
  }

  /** A ScalingDecided for one of our containers: apply in place, record what was applied. */
  async resize(d: EventData<typeof ScalingDecided>): Promise<void> {
    if (d.nodeId !== this.nodeId) return;
    await this.pool.resize(d);
  }

  /** A StandingChanged to `suspended`: kill the wallet's tasks and stop its containers on this node. */
  async standing(d: EventData<typeof StandingChanged>): Promise<void> {
    if (d.to !== 'suspended') return;
    const mine = [...this.node.containers.values()].filter((c) => c.walletId === d.walletId);
    await Promise.all(mine.map((c) => this.pool.stop(c, 'suspended', 'suspended')));
  }
}
