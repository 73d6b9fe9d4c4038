import { z } from 'zod';
import { defineEvent } from '../define';
import { idSchema } from '../ids';
import { cpuMillisSchema, durationMsSchema, labelsSchema, memoryBytesSchema } from '../units';

// --- node category (stream node-<nodeId>) --------------------------------------------------------
export const NodeRegistered = defineEvent(
  'node',
  'NodeRegistered',
  z.object({
    nodeId: idSchema,
    cpuMillis: cpuMillisSchema,
    memoryBytes: memoryBytesSchema,
    labels: labelsSchema,
    registeredAtMs: z.int().min(0),
    /**
     * Whether the node runs network-enabled functions (its engine has the owners' bridge networks).
     * False on an engine started with `--bridge=none --iptables=false` (`mesh up --nodes N`, nodes
     * 2..N): the scheduler places no network-enabled function there. Absent (an older node): true.
     */
    network: z.boolean().optional(),
  }),
  'A container-manager started and offers this capacity.',
);

export const NodeDrainRequested = defineEvent(
  'node',
  'NodeDrainRequested',
  z.object({
    nodeId: idSchema,
    requestedAtMs: z.int().min(0),
  }),
  'The operator asked to drain the node: no new task is placed there; once its running tasks have ended it leaves (NodeLeft, reason drained).',
);

export const NodeLeft = defineEvent(
  'node',
  'NodeLeft',
  z.object({
    nodeId: idSchema,
    reason: z.enum(['shutdown', 'drained']),
    leftAtMs: z.int().min(0),
  }),
  'A container-manager shut down cleanly (shutdown), or its node finished a drain (drained).',
);

// --- container category (stream container-<containerId>) -----------------------------------------
const containerRef = { containerId: idSchema, nodeId: idSchema, walletId: idSchema, functionId: idSchema };

export const ContainerStarted = defineEvent(
  'container',
  'ContainerStarted',
  z.object({
    ...containerRef,
    dockerId: z.string().min(1).max(128),
    image: z.string().max(256),
    cpuMillis: cpuMillisSchema,
    memoryBytes: memoryBytesSchema,
    cpuMaxMillis: cpuMillisSchema,
    cpuMinMillis: cpuMillisSchema,
    coldStartMs: durationMsSchema,
    startedAtMs: z.int().min(0),
  }),
  'A warm container for (wallet, function) was created and started.',
);

export const ContainerResized = defineEvent(
  'container',
  'ContainerResized',
  z.object({
    ...containerRef,
    decisionId: idSchema,
    fromCpuMillis: cpuMillisSchema,
    toCpuMillis: cpuMillisSchema,
    fromMemoryBytes: memoryBytesSchema,
    toMemoryBytes: memoryBytesSchema,
    applyMs: durationMsSchema,
    appliedAtMs: z.int().min(0),
  }),
  'A scaling decision was applied in place with docker update.',
);

export const ContainerStopped = defineEvent(
  'container',
  'ContainerStopped',
  z.object({
    ...containerRef,
    reason: z.enum(['idle', 'suspended', 'shutdown', 'orphan', 'error', 'oom', 'timeout', 'cancelled', 'superseded']),
    stoppedAtMs: z.int().min(0),
  }),
  'The container was stopped and removed: idle, wallet suspended, service shutdown, orphan, error (container lost, Docker error), oom, or killed with its task (timeout, cancelled, superseded attempt).',
);

// --- execution category (stream execution-<executionId>) -----------------------------------------
const executionRef = { executionId: idSchema, taskId: idSchema, attempt: z.int().min(1), ...containerRef };

export const ExecutionStarted = defineEvent(
  'execution',
  'ExecutionStarted',
  z.object({
    ...executionRef,
    startedAtMs: z.int().min(0),
    warm: z.boolean(),
  }),
  'The task script started in its container.',
);

export const ExecutionSucceeded = defineEvent(
  'execution',
  'ExecutionSucceeded',
  z.object({
    ...executionRef,
    outputRef: z.object({ bucket: idSchema, key: z.string().max(512) }),
    durationMs: durationMsSchema,
  }),
  'The script exited 0; output, stdout and stderr are stored under outputRef.',
);

export const ExecutionFailed = defineEvent(
  'execution',
  'ExecutionFailed',
  z.object({
    // containerId is absent when no container could be started (missing image, Docker down).
    ...executionRef,
    containerId: idSchema.optional(),
    exitCode: z.int().optional(),
    reason: z.enum(['exit-code', 'oom', 'image-missing', 'agent-restart', 'docker-error', 'input-missing']),
    retryable: z.boolean(),
    stderrTail: z.string().max(4096),
    durationMs: durationMsSchema,
    outputRef: z.object({ bucket: idSchema, key: z.string().max(512) }).optional(),
  }),
  'The attempt failed: non-zero exit, OOM kill, missing image, or the agent restarted under it.',
);

export const ExecutionTimedOut = defineEvent(
  'execution',
  'ExecutionTimedOut',
  z.object({
    ...executionRef,
    timeoutMs: durationMsSchema,
  }),
  'The script ran past the function timeout and was killed.',
);

export const ExecutionAborted = defineEvent(
  'execution',
  'ExecutionAborted',
  z.object({
    ...executionRef,
    reason: z.enum(['suspended', 'cancelled', 'superseded']),
    abortedAtMs: z.int().min(0),
  }),
  'The script was killed because the wallet was suspended, the task cancelled, or the attempt superseded (the scheduler requeued it, e.g. after declaring the node lost).',
);

// --- usage category (stream usage-<containerId>) --------------------------------------------------
export const ResourceSampled = defineEvent(
  'usage',
  'ResourceSampled',
  z
    .object({
      sampleId: idSchema,
      ...containerRef,
      /** 1-based, consecutive per container: a gap or repeat is visible to every consumer. */
      seq: z.int().min(1),
      taskId: idSchema.optional(),
      windowStartMs: z.int().min(0),
      windowEndMs: z.int().min(0),
      /** CPU time used in the window in nanoseconds (= core-ns), the difference of the cumulative counter. */
      cpuNanos: z.int().min(0),
      memoryBytesAvg: memoryBytesSchema,
      memoryBytesMax: memoryBytesSchema,
      cpuLimitMillis: cpuMillisSchema,
      memoryLimitBytes: memoryBytesSchema,
      final: z.boolean(),
      /** The container's cumulative CPU counter (ns) at windowEndMs: lets a restarted agent resume without double counting. */
      cpuNanosTotal: z.int().min(0).optional(),
    })
    .refine((s) => s.windowEndMs >= s.windowStartMs, { error: 'windowEndMs must be >= windowStartMs', path: ['windowEndMs'] }),
  'CPU and memory a container used in one window; cpuNanos sums exactly to the container total.',
);

export const nodeEvents = [NodeRegistered, NodeDrainRequested, NodeLeft] as const;
export const containerEvents = [ContainerStarted, ContainerResized, ContainerStopped] as const;
export const executionEvents = [ExecutionStarted, ExecutionSucceeded, ExecutionFailed, ExecutionTimedOut, ExecutionAborted] as const;
export const usageEvents = [ResourceSampled] as const;
export const containerManagerEvents = [...nodeEvents, ...containerEvents, ...executionEvents, ...usageEvents] as const;

/** Bound of `runningExecutions` in a heartbeat (a node runs far fewer at once: each holds CPU and memory). */
export const NODE_RUNNING_EXECUTIONS_MAX = 10_000;

/** Core NATS (not persisted) liveness beat on `mesh.heartbeat.node.<nodeId>`. */
export const nodeHeartbeatSchema = z.object({
  nodeId: idSchema,
  atMs: z.int().min(0),
  cpuMillis: cpuMillisSchema,
  memoryBytes: memoryBytesSchema,
  usedCpuMillis: z.int().min(0),
  usedMemoryBytes: z.int().min(0),
  runningContainers: z.int().min(0),
  idleContainers: z.array(z.object({ walletId: idSchema, functionId: idSchema, containerId: idSchema })).max(10000),
  /**
   * Executions the node is running now (started, not finished). The scheduler requeues a task it
   * believes running on a live node that has stopped listing it (its Execution* events were lost).
   * Optional: a node of an older version does not send it, and is then never suspected.
   */
  runningExecutions: z
    .array(z.object({ taskId: idSchema, executionId: idSchema }))
    .max(NODE_RUNNING_EXECUTIONS_MAX)
    .optional(),
});
export type NodeHeartbeat = z.output<typeof nodeHeartbeatSchema>;
