import { z } from 'zod';
import { apiIdSchema } from './inputs';
import { defineRequest, type RequestDefinition } from '../define';
import { idSchema } from '../ids';
import { LIMITS } from '../units';
import { apiSubject, querySubject } from '../subjects';
import { functionSpecSchema } from '../events/scheduler';
import { standingSchema } from '../events/credit-manager';

/**
 * Commands (`mesh.api.scheduler.*`) and queries (`mesh.query.scheduler.*`) of the scheduler service
 * (payloads and examples in docs/scheduler.md). Requests are strict objects: an unknown field is
 * refused rather than silently dropped.
 */

/** User-given ids are at most 64 characters at the API so derived ids (`<taskId>-<attempt>`) stay within 128. */
const apiId = apiIdSchema;

/** Defaults of deploy-function (the reference system's values; docs/scheduler.md). */
export const FUNCTION_DEFAULTS = {
  cpuMinMillis: 250,
  cpuMaxMillis: 4000,
  cpuInitialMillis: 1000,
  memoryBytes: 256 * 1024 * 1024,
  timeoutMs: 15 * 60 * 1000,
  network: false,
  maxAttempts: 3,
} as const;

/** Docker refuses a memory limit below 6 MiB. */
export const FUNCTION_MEMORY_BYTES_MIN = 6 * 1024 * 1024;

const cpuMillisInput = z
  .int({ error: 'must be an integer number of millicores' })
  .min(1, { error: 'must be >= 1 millicore' })
  .max(LIMITS.cpuMillisMax, { error: `must be <= ${LIMITS.cpuMillisMax} millicores` });

export const TASK_STATES = ['pending', 'dispatched', 'running', 'succeeded', 'failed', 'cancelled'] as const;
export const taskStateSchema = z.enum(TASK_STATES);
export type TaskStateName = z.output<typeof taskStateSchema>;

/** The bytes a (valid) base64 string decodes to, without decoding it. */
const base64Bytes = (b64: string) => (b64.length / 4) * 3 - (b64.endsWith('==') ? 2 : b64.endsWith('=') ? 1 : 0);

/** Largest inline input of a request in base64 characters (LIMITS.requestInputBytesMax bytes once decoded). */
const REQUEST_INLINE_BASE64_MAX = Math.ceil(LIMITS.requestInputBytesMax / 3) * 4;

/**
 * The input of submit-task: exactly one of `inline` (base64, at most LIMITS.requestInputBytesMax =
 * 512 KiB decoded) or `objectRef` (a key in the object store). Tenants have no JetStream access, so
 * inline is their only way; an inline input above LIMITS.inlineInputBytesMax (64 KiB, what an event
 * carries) is stored by the scheduler in the owner's input bucket and the task gets its objectRef.
 * Checked field by field so the error says which rule broke.
 */
export const submitInputSchema = z
  .strictObject({
    inline: z
      .string({ error: 'must be a base64 string' })
      .max(REQUEST_INLINE_BASE64_MAX, {
        error: `inline input too large (at most ${LIMITS.requestInputBytesMax} bytes, LIMITS.requestInputBytesMax): the operator may put it in the object store and pass objectRef`,
      })
      .pipe(z.base64({ error: 'must be base64' }))
      // The length bound above admits up to 2 bytes more (the limit is no multiple of 3): the exact count.
      .refine((b64) => base64Bytes(b64) <= LIMITS.requestInputBytesMax, {
        error: `inline input too large (at most ${LIMITS.requestInputBytesMax} bytes, LIMITS.requestInputBytesMax): the operator may put it in the object store and pass objectRef`,
      })
      .optional(),
    objectRef: z
      .strictObject({
        bucket: idSchema,
        key: z.string({ error: 'must be a string' }).min(1, { error: 'must not be empty' }).max(512, { error: 'must be at most 512 characters' }),
      })
      .optional(),
  })
  .superRefine((input, ctx) => {
    if ((input.inline === undefined) === (input.objectRef === undefined)) {
      ctx.addIssue({ code: 'custom', message: 'give exactly one of inline (base64) or objectRef', path: [] });
    }
  });

// --- commands --------------------------------------------------------------------------------------
export const deployFunctionRequest = defineRequest(
  'command',
  apiSubject('scheduler', 'deploy-function'),
  z.strictObject({
    functionId: apiId,
    image: z
      .string({ error: 'must be a string' })
      .regex(/^[A-Za-z0-9][A-Za-z0-9._/:@-]{0,255}$/, { error: 'must be a Docker image reference such as mesh/task-base:latest' }),
    script: z
      .string({ error: 'must be a string' })
      .min(1, { error: 'must not be empty' })
      .refine((s) => Buffer.byteLength(s, 'utf8') <= LIMITS.scriptBytesMax, { error: `must be at most ${LIMITS.scriptBytesMax} bytes` }),
    cpuMinMillis: cpuMillisInput.optional(),
    cpuMaxMillis: cpuMillisInput.optional(),
    cpuInitialMillis: cpuMillisInput.optional(),
    memoryBytes: z
      .int({ error: 'must be an integer number of bytes' })
      .min(FUNCTION_MEMORY_BYTES_MIN, { error: `must be >= ${FUNCTION_MEMORY_BYTES_MIN} bytes (6 MiB, Docker's minimum)` })
      .max(LIMITS.memoryBytesMax, { error: `must be <= ${LIMITS.memoryBytesMax} bytes` })
      .optional(),
    timeoutMs: z
      .int({ error: 'must be an integer number of milliseconds' })
      .min(1, { error: 'must be >= 1 ms' })
      .max(LIMITS.timeoutMsMax, { error: `must be <= ${LIMITS.timeoutMsMax} ms` })
      .optional(),
    pricePlanId: idSchema.optional(),
    network: z.boolean({ error: 'must be true or false' }).optional(),
    maxAttempts: z
      .int({ error: 'must be an integer' })
      .min(1, { error: 'must be >= 1' })
      .max(LIMITS.maxAttemptsMax, { error: `must be <= ${LIMITS.maxAttemptsMax}` })
      .optional(),
  }),
  functionSpecSchema.extend({ changed: z.boolean() }),
  'Deploys a function or replaces it with a new version (every field; missing ones take the defaults). Defaults: cpu 250/4000/1000 m (min/max/initial; min and initial clamped into the given range), 256 MiB, 15 min timeout, no network, 3 attempts. Redeploying the same spec writes nothing (changed: false). Refused with storage_full while the event store is above STORAGE_REFUSE_ABOVE_PCT.',
  { access: 'tenant' },
);

export const submitTaskRequest = defineRequest(
  'command',
  apiSubject('scheduler', 'submit-task'),
  z.strictObject({
    functionId: apiId,
    walletId: apiId,
    taskId: apiId.optional(),
    input: submitInputSchema,
    priority: z.int({ error: 'must be an integer' }).min(0, { error: 'must be >= 0' }).max(9, { error: 'must be <= 9' }).optional(),
  }),
  z.object({
    taskId: idSchema,
    functionId: idSchema,
    walletId: idSchema,
    priority: z.int(),
    maxAttempts: z.int(),
    state: taskStateSchema,
    /** True when a task with this id and the same content was already submitted: nothing was written. */
    duplicate: z.boolean(),
  }),
  'Submits one task (one invocation of a function on one input item) to the pending pool. Refused: unknown_function, unknown_wallet, provider_wallet, exceeds_node_capacity, task_exists (same id, other content), storage_full (the event store is above STORAGE_REFUSE_ABOVE_PCT; nothing is written).',
  { access: 'tenant' },
);

export const cancelTaskRequest = defineRequest(
  'command',
  apiSubject('scheduler', 'cancel-task'),
  z.strictObject({ taskId: apiId, reason: z.string({ error: 'must be a string' }).max(1024, { error: 'must be at most 1024 characters' }).optional() }),
  z.object({ taskId: idSchema, state: z.literal('cancelled'), executionId: idSchema.optional(), nodeId: idSchema.optional() }),
  'Cancels a pending, dispatched or running task (its node kills a running attempt). Refused: unknown_task, task_finished.',
  { access: 'tenant' },
);

// --- queries ---------------------------------------------------------------------------------------
/** Log positions travel as decimal strings (they are bigint). */
const position = z.string().regex(/^\d+$/);
const outputRef = z.object({ bucket: idSchema, key: z.string() });

export const taskTransitionSchema = z.object({
  position,
  revision: z.int(),
  type: z.string(),
  occurredAt: z.string(),
  state: taskStateSchema,
  attempt: z.int().optional(),
  nodeId: idSchema.optional(),
  executionId: idSchema.optional(),
  containerId: idSchema.optional(),
  /** The cause of the transition (requeue/failure/cancel reason). */
  reason: z.string().optional(),
  exitCode: z.int().optional(),
});

export const taskDetailSchema = z.object({
  taskId: idSchema,
  functionId: idSchema,
  walletId: idSchema,
  state: taskStateSchema,
  priority: z.int(),
  /** The current attempt (1-based): the one dispatched/running, the next one while pending, the last one when finished. */
  attempt: z.int(),
  maxAttempts: z.int(),
  nodeId: idSchema.optional(),
  executionId: idSchema.optional(),
  containerId: idSchema.optional(),
  reason: z.string().optional(),
  exitCode: z.int().optional(),
  outputRef: outputRef.optional(),
  durationMs: z.int().optional(),
  submittedAtMs: z.int(),
  history: z.array(taskTransitionSchema),
});
export type TaskDetail = z.output<typeof taskDetailSchema>;

export const taskRequest = defineRequest(
  'query',
  querySubject('scheduler', 'task'),
  z.strictObject({ taskId: apiId }),
  taskDetailSchema,
  'One task read from its stream: state, attempts, node, container, outcome and every transition with its log position and cause.',
  { access: 'tenant' },
);

export const TASKS_REPLY_MAX = 1000;

export const taskSummarySchema = z.object({
  taskId: idSchema,
  functionId: idSchema,
  walletId: idSchema,
  state: taskStateSchema,
  priority: z.int(),
  attempt: z.int(),
  maxAttempts: z.int(),
  nodeId: idSchema.optional(),
  reason: z.string().optional(),
  submittedAtMs: z.int(),
});

export const tasksRequest = defineRequest(
  'query',
  querySubject('scheduler', 'tasks'),
  z.strictObject({
    walletId: apiId.optional(),
    state: taskStateSchema.optional(),
    limit: z
      .int({ error: 'must be an integer' })
      .min(1, { error: 'must be >= 1' })
      .max(TASKS_REPLY_MAX, { error: `must be <= ${TASKS_REPLY_MAX}` })
      .optional(),
  }),
  z.object({ tasks: z.array(taskSummarySchema), total: z.int(), truncated: z.boolean() }),
  'Tasks from the in-memory view, newest first, optionally of one wallet and/or in one state (default limit 100).',
  { access: 'tenant' },
);

export const functionsRequest = defineRequest(
  'query',
  querySubject('scheduler', 'functions'),
  z.strictObject({}),
  z.object({ functions: z.array(functionSpecSchema) }),
  'Every deployed function at its latest version.',
  { access: 'tenant' },
);

export const functionRequest = defineRequest(
  'query',
  querySubject('scheduler', 'function'),
  z.strictObject({ functionId: apiId }),
  functionSpecSchema,
  'One deployed function at its latest version (unknown_function when none).',
  { access: 'tenant' },
);

export const poolsRequest = defineRequest(
  'query',
  querySubject('scheduler', 'pools'),
  z.strictObject({}),
  z.object({
    pending: z.int(),
    dispatched: z.int(),
    running: z.int(),
    wallets: z.array(
      z.object({
        walletId: idSchema,
        pending: z.int(),
        dispatched: z.int(),
        running: z.int(),
        standing: standingSchema.nullable(),
        policy: z.enum(['greedy', 'conservative']).nullable(),
        /** New dispatches allowed for this wallet now (standing normal, or low under greedy). */
        dispatchable: z.boolean(),
      }),
    ),
  }),
  'Pool sizes: pending (per wallet, with its standing and whether it may dispatch), dispatched and running.',
);

/** A node as `mesh node list` shows it: left wins over lost, lost over draining. */
export const NODE_STATES = ['ready', 'draining', 'left', 'lost'] as const;

export const nodesRequest = defineRequest(
  'query',
  querySubject('scheduler', 'nodes'),
  z.strictObject({}),
  z.object({
    nodes: z.array(
      z.object({
        nodeId: idSchema,
        cpuMillis: z.int(),
        memoryBytes: z.int(),
        /** Reserved by the tasks the scheduler dispatched there (function's initial CPU and memory). */
        reservedCpuMillis: z.int(),
        reservedMemoryBytes: z.int(),
        /** From the last heartbeat (null before the first one). */
        usedCpuMillis: z.int().nullable(),
        usedMemoryBytes: z.int().nullable(),
        freeCpuMillis: z.int(),
        freeMemoryBytes: z.int(),
        tasks: z.int(),
        idleContainers: z.int(),
        lastHeartbeatAtMs: z.int().nullable(),
        /** Containers (busy and idle) its last heartbeat counted (null before the first one). */
        runningContainers: z.int().nullable(),
        alive: z.boolean(),
        left: z.boolean(),
        /** NodeDrainRequested and not left yet: no new task is placed there. */
        draining: z.boolean(),
        /** left (NodeLeft: shutdown or drained), lost (silent past NODE_LOST_AFTER_MS), draining, else ready. */
        state: z.enum(NODE_STATES),
        /** Runs network-enabled functions (false: an engine without bridge). */
        network: z.boolean(),
        /** (completed + 1) / (completed + lost + 1), from the log. */
        reliability: z.number(),
        completed: z.int(),
        lost: z.int(),
      }),
    ),
  }),
  'Registered nodes: capacity, reserved, used and free CPU and memory, containers, last heartbeat, state (ready, draining, left, lost), network, liveness and reliability.',
);

/** Largest chunk of an output one task-output answer carries (base64 plus JSON stays under nats-server's 1 MiB max_payload). */
export const TASK_OUTPUT_CHUNK_BYTES_MAX = 512 * 1024;

export const taskOutputRequest = defineRequest(
  'query',
  querySubject('scheduler', 'task-output'),
  z.strictObject({
    taskId: apiId,
    offset: z.int({ error: 'must be an integer number of bytes' }).min(0, { error: 'must be >= 0' }).optional(),
    limitBytes: z
      .int({ error: 'must be an integer number of bytes' })
      .min(1, { error: 'must be >= 1' })
      .max(TASK_OUTPUT_CHUNK_BYTES_MAX, { error: `must be <= ${TASK_OUTPUT_CHUNK_BYTES_MAX} bytes` })
      .optional(),
  }),
  z.object({
    taskId: idSchema,
    /** Size of the whole output object (a tar: manifest.json, stdout, stderr, out/<files>). */
    totalBytes: z.int().min(0),
    offset: z.int().min(0),
    /** Bytes [offset, offset + length) of the object, base64. */
    chunk: z.string(),
    /** True when this chunk reaches the end of the object. */
    done: z.boolean(),
  }),
  `A chunk of a task's output object (TaskSucceeded.data.outputRef), at most ${TASK_OUTPUT_CHUNK_BYTES_MAX} bytes (the default) from offset (default 0): the way tenants read outputs (they have no JetStream access). Only the task's owner (or the operator) may read it: forbidden otherwise. Refused: unknown_task, no_output (the task has no output yet), output_missing (expired from the object store), offset_out_of_range.`,
  { access: 'tenant' },
);

// --- storage ---------------------------------------------------------------------------------------
/** The refusal of submit-task and deploy-function while the event store is above STORAGE_REFUSE_ABOVE_PCT (no event is written). */
export const STORAGE_FULL = 'storage_full';

/**
 * Defaults of the object store (inputs and outputs), shared by the container-manager (which enforces
 * them), the CLI (which stores inputs and creates tenants' buckets) and the scheduler (which stores
 * large inline inputs): 7 days of TTL, 64 MiB per input item, 1 GiB per owner's bucket.
 */
export const OBJECT_STORE_DEFAULTS = {
  ttlMs: 7 * 24 * 3600_000,
  inputMaxBytes: 64 * 1024 * 1024,
  bucketMaxBytes: 1024 ** 3,
} as const;

/** Where the capacity of the JetStream store comes from (docs/operations.md, "Storage limits"). */
export const STORAGE_CAPACITY_SOURCES = ['account-limit', 'configured', 'none'] as const;

export const storageStatusSchema = z.object({
  /** Bytes the file-stored JetStream streams hold (stream info `state.bytes`, summed: the log, KV and object buckets). */
  usedBytes: z.int().min(0),
  /** The account's JetStream storage limit when the server has one, else STORAGE_CAPACITY_BYTES (the server's max_file_store), else null. */
  capacityBytes: z.int().min(1).nullable(),
  capacitySource: z.enum(STORAGE_CAPACITY_SOURCES),
  /** usedBytes / capacityBytes in percent (null without a capacity). */
  usedPct: z.number().nullable(),
  /** The filesystem holding the store (JETSTREAM_STORE_DIR), when it is local to the scheduler. */
  filesystem: z
    .object({
      path: z.string(),
      totalBytes: z.int().min(0),
      availableBytes: z.int().min(0),
      usedPct: z.number(),
    })
    .nullable(),
  refuseAbovePct: z.int(),
  /** New work (submit-task, deploy-function) is refused with storage_full. */
  refusing: z.boolean(),
  /** Why new work is refused: the usage and the threshold. */
  reason: z.string().optional(),
  measuredAtMs: z.int(),
});
export type StorageStatus = z.output<typeof storageStatusSchema>;

export const storageRequest = defineRequest(
  'query',
  querySubject('scheduler', 'storage'),
  z.strictObject({}),
  storageStatusSchema,
  'Storage of the event store as the scheduler measures it before accepting new work: bytes used, capacity, filesystem, the threshold and whether submit-task/deploy-function are refused (storage_full).',
);

export const schedulerRequests: RequestDefinition[] = [
  deployFunctionRequest,
  submitTaskRequest,
  cancelTaskRequest,
  taskRequest,
  taskOutputRequest,
  tasksRequest,
  functionsRequest,
  functionRequest,
  poolsRequest,
  nodesRequest,
  storageRequest,
];
