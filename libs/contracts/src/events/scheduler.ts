import { z } from 'zod';
import { defineEvent } from '../define';
import { idSchema } from '../ids';
import { cpuMillisSchema, durationMsSchema, LIMITS, memoryBytesSchema } from '../units';

/** A task input: small items inline (base64), larger ones as a key in the functions' input bucket. */
export const taskInputSchema = z.union([
  z.object({
    inline: z
      .base64({ error: 'must be base64' })
      .max(Math.ceil(LIMITS.inlineInputBytesMax / 3) * 4, { error: 'inline input too large: put it in the object store and pass objectRef' }),
  }),
  z.object({ objectRef: z.object({ bucket: idSchema, key: z.string().min(1).max(512) }) }),
]);
export type TaskInput = z.output<typeof taskInputSchema>;

export const functionSpecSchema = z.object({
  functionId: idSchema,
  version: z.int().min(1),
  image: z.string().min(1).max(256),
  script: z.string().min(1).max(LIMITS.scriptBytesMax),
  cpuMinMillis: cpuMillisSchema,
  cpuMaxMillis: cpuMillisSchema,
  cpuInitialMillis: cpuMillisSchema,
  memoryBytes: memoryBytesSchema,
  timeoutMs: durationMsSchema,
  pricePlanId: idSchema.optional(),
  network: z.boolean(),
  maxAttempts: z.int().min(1).max(LIMITS.maxAttemptsMax),
  /** The tenant that owns the function (set from the caller's subject, never from a request body); absent: the operator's. */
  tenantId: idSchema.optional(),
});
export type FunctionSpec = z.output<typeof functionSpecSchema>;

// --- function category (stream function-<functionId>) -------------------------------------------
export const FunctionDeployed = defineEvent(
  'function',
  'FunctionDeployed',
  functionSpecSchema,
  'A function was deployed or updated (version increases by one per update).',
);

// --- task category (stream task-<taskId>) --------------------------------------------------------
const taskRef = { taskId: idSchema, functionId: idSchema, walletId: idSchema };
/** The tenant that submitted the task (from the caller's subject); absent: the operator. */
const taskOwner = { tenantId: idSchema.optional() };

export const TaskSubmitted = defineEvent(
  'task',
  'TaskSubmitted',
  z.object({
    ...taskRef,
    ...taskOwner,
    input: taskInputSchema,
    priority: z.int().min(0).max(9),
    maxAttempts: z.int().min(1).max(LIMITS.maxAttemptsMax),
    submittedAtMs: z.int().min(0),
  }),
  'A task entered the pending pool.',
);

/** Self-contained: the container-manager needs nothing else to run it. */
export const TaskDispatched = defineEvent(
  'task',
  'TaskDispatched',
  z.object({
    ...taskRef,
    ...taskOwner,
    attempt: z.int().min(1),
    executionId: idSchema,
    nodeId: idSchema,
    function: functionSpecSchema,
    input: taskInputSchema,
    dispatchedAtMs: z.int().min(0),
  }),
  'The scheduler placed one attempt of a task on a node.',
);

export const TaskRunning = defineEvent(
  'task',
  'TaskRunning',
  z.object({
    ...taskRef,
    attempt: z.int().min(1),
    executionId: idSchema,
    nodeId: idSchema,
    containerId: idSchema,
  }),
  'The node reported the attempt running in a container.',
);

export const TaskRequeued = defineEvent(
  'task',
  'TaskRequeued',
  z.object({
    ...taskRef,
    attempt: z.int().min(1),
    reason: z.enum(['aborted', 'node-lost', 'agent-restart', 'infrastructure']),
    detail: z.string().max(1024).optional(),
  }),
  'The attempt ended without a verdict on the task; it is back in the pending pool with attempt + 1.',
);

export const TaskSucceeded = defineEvent(
  'task',
  'TaskSucceeded',
  z.object({
    ...taskRef,
    attempt: z.int().min(1),
    executionId: idSchema,
    outputRef: z.object({ bucket: idSchema, key: z.string().max(512) }),
    durationMs: durationMsSchema,
  }),
  'Terminal: the task succeeded.',
);

export const TaskFailed = defineEvent(
  'task',
  'TaskFailed',
  z.object({
    ...taskRef,
    attempt: z.int().min(0),
    reason: z.string().min(1).max(1024),
    exitCode: z.int().optional(),
  }),
  'Terminal: the task failed (non-retryable error or max attempts reached).',
);

export const TaskCancelled = defineEvent(
  'task',
  'TaskCancelled',
  z.object({
    ...taskRef,
    reason: z.string().max(1024),
    executionId: idSchema.optional(),
    nodeId: idSchema.optional(),
  }),
  'Terminal: the task was cancelled; a running attempt is killed by its node.',
);

export const functionEvents = [FunctionDeployed] as const;
export const taskEvents = [TaskSubmitted, TaskDispatched, TaskRunning, TaskRequeued, TaskSucceeded, TaskFailed, TaskCancelled] as const;
export const schedulerEvents = [...functionEvents, ...taskEvents] as const;
