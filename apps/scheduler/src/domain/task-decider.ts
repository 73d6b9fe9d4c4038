import {
  DomainError,
  type Caller,
  type EventData,
  type FunctionSpec,
  type NewEvent,
  type TaskEvent,
  type TaskInput,
  type TaskRequeued,
  type TaskStateName,
} from '@mesh/contracts';
import type { Decider } from '@mesh/eventstore/decider';
import { assertOwnsTask, ownerField } from './access';

/**
 * The task aggregate (stream `task-<taskId>`). Lifecycle:
 *   pending -> dispatched(node) -> running(container) -> succeeded | failed | cancelled
 *   dispatched/running -> pending again (TaskRequeued: abort, node lost, agent restart, retryable
 *   infrastructure failure) with attempt + 1.
 * Every requeue counts as an attempt: when the attempt that ended was the last one
 * (attempt >= maxAttempts) the task fails instead, naming the cause, so nothing is requeued forever.
 * Execution results for another attempt than the current one are ignored (idempotent, no stale effects).
 */
export type RequeueReason = EventData<typeof TaskRequeued>['reason'];

export interface TaskState {
  status: 'none' | TaskStateName;
  taskId: string;
  functionId: string;
  walletId: string;
  /** The tenant that submitted it (TaskSubmitted.data.tenantId); undefined: the operator. */
  tenantId?: string;
  priority: number;
  maxAttempts: number;
  /** 1-based: the attempt dispatched/running, the next one while pending, the last one when finished. */
  attempt: number;
  input?: TaskInput;
  nodeId?: string;
  executionId?: string;
  containerId?: string;
  reason?: string;
  submittedAtMs: number;
}

export type TaskCommand =
  | {
      kind: 'submit';
      /** Who submits: the task's owner (the handler has checked the wallet, the function and the input for it). */
      caller: Caller;
      taskId: string;
      functionId: string;
      walletId: string;
      input: TaskInput;
      priority: number;
      maxAttempts: number;
      nowMs: number;
    }
  | { kind: 'dispatch'; attempt: number; nodeId: string; function: FunctionSpec; nowMs: number }
  | { kind: 'execution-started'; executionId: string; nodeId: string; containerId: string }
  | { kind: 'execution-succeeded'; executionId: string; outputRef: { bucket: string; key: string }; durationMs: number }
  | { kind: 'execution-failed'; executionId: string; reason: string; exitCode?: number; retryable: boolean; detail?: string }
  | { kind: 'execution-timed-out'; executionId: string; timeoutMs: number }
  | { kind: 'execution-aborted'; executionId: string; reason: 'suspended' | 'cancelled' | 'superseded' }
  | { kind: 'node-lost'; nodeId: string; reason: 'node-lost' | 'infrastructure'; detail: string }
  | { kind: 'start-timeout'; executionId: string; detail: string }
  | { kind: 'execution-lost'; executionId: string; detail: string }
  | { kind: 'cancel'; caller: Caller; taskId: string; reason: string };

export const executionIdOf = (taskId: string, attempt: number) => `${taskId}-${attempt}`;

const TERMINAL = new Set(['succeeded', 'failed', 'cancelled']);
export const isTerminal = (status: TaskState['status']) => TERMINAL.has(status);
const isActive = (status: TaskState['status']) => status === 'dispatched' || status === 'running';

export function initialTaskState(): TaskState {
  return { status: 'none', taskId: '', functionId: '', walletId: '', priority: 0, maxAttempts: 1, attempt: 0, submittedAtMs: 0 };
}

export function evolveTask(state: TaskState, event: TaskEvent): TaskState {
  switch (event.type) {
    case 'TaskSubmitted': {
      const d = event.data;
      return {
        status: 'pending',
        taskId: d.taskId,
        functionId: d.functionId,
        walletId: d.walletId,
        ...(d.tenantId !== undefined ? { tenantId: d.tenantId } : {}),
        priority: d.priority,
        maxAttempts: d.maxAttempts,
        attempt: 1,
        input: d.input,
        submittedAtMs: d.submittedAtMs,
      };
    }
    case 'TaskDispatched':
      return {
        ...state,
        status: 'dispatched',
        attempt: event.data.attempt,
        nodeId: event.data.nodeId,
        executionId: event.data.executionId,
        containerId: undefined,
      };
    case 'TaskRunning':
      return { ...state, status: 'running', containerId: event.data.containerId };
    case 'TaskRequeued':
      return {
        ...state,
        status: 'pending',
        attempt: event.data.attempt + 1,
        nodeId: undefined,
        executionId: undefined,
        containerId: undefined,
        reason: event.data.reason,
      };
    case 'TaskSucceeded':
      return { ...state, status: 'succeeded', attempt: event.data.attempt };
    case 'TaskFailed':
      return { ...state, status: 'failed', reason: event.data.reason };
    case 'TaskCancelled':
      return { ...state, status: 'cancelled', reason: event.data.reason };
    default:
      return state;
  }
}

const ref = (s: TaskState) => ({ taskId: s.taskId, functionId: s.functionId, walletId: s.walletId });

/** The attempt on the node ended without a verdict: back to the pool, or failed when it was the last one. */
function requeueOrFail(state: TaskState, reason: RequeueReason, detail: string, exitCode?: number): TaskEvent[] {
  if (state.attempt >= state.maxAttempts) {
    return [
      {
        type: 'TaskFailed',
        data: {
          ...ref(state),
          attempt: state.attempt,
          reason: `${reason}: attempt ${state.attempt} of ${state.maxAttempts} ended (${detail}); no attempts left`.slice(0, 1024),
          ...(exitCode !== undefined ? { exitCode } : {}),
        },
      },
    ];
  }
  return [{ type: 'TaskRequeued', data: { ...ref(state), attempt: state.attempt, reason, detail: detail.slice(0, 1024) } }];
}

/** Execution results only count for the current attempt while it is on a node. */
const isCurrent = (state: TaskState, executionId: string) => isActive(state.status) && state.executionId === executionId;

export function decideTask(command: TaskCommand, state: TaskState): TaskEvent[] {
  switch (command.kind) {
    case 'submit': {
      if (state.status !== 'none') {
        // Another tenant's task id is not a duplicate to confirm, nor content to compare.
        assertOwnsTask(command.caller, state, 'submit');
        const same =
          state.functionId === command.functionId &&
          state.walletId === command.walletId &&
          state.priority === command.priority &&
          JSON.stringify(state.input) === JSON.stringify(command.input);
        if (same) return [];
        throw new DomainError('task_exists', `task ${command.taskId} already exists with other content`);
      }
      return [
        {
          type: 'TaskSubmitted',
          data: {
            taskId: command.taskId,
            functionId: command.functionId,
            walletId: command.walletId,
            ...ownerField(command.caller),
            input: command.input,
            priority: command.priority,
            maxAttempts: command.maxAttempts,
            submittedAtMs: command.nowMs,
          },
        },
      ];
    }
    case 'dispatch': {
      // A stale view (or a second scheduler) must never dispatch the same attempt twice.
      if (state.status !== 'pending' || state.attempt !== command.attempt || !state.input) return [];
      return [
        {
          type: 'TaskDispatched',
          data: {
            ...ref(state),
            // The task's owner travels with the dispatch: the node runs it with that owner's buckets.
            ...(state.tenantId !== undefined ? { tenantId: state.tenantId } : {}),
            attempt: state.attempt,
            executionId: executionIdOf(state.taskId, state.attempt),
            nodeId: command.nodeId,
            function: command.function,
            input: state.input,
            dispatchedAtMs: command.nowMs,
          },
        },
      ];
    }
    case 'execution-started':
      if (state.status !== 'dispatched' || state.executionId !== command.executionId) return [];
      return [
        {
          type: 'TaskRunning',
          data: { ...ref(state), attempt: state.attempt, executionId: command.executionId, nodeId: command.nodeId, containerId: command.containerId },
        },
      ];
    case 'execution-succeeded':
      if (!isCurrent(state, command.executionId)) return [];
      return [
        {
          type: 'TaskSucceeded',
          data: { ...ref(state), attempt: state.attempt, executionId: command.executionId, outputRef: command.outputRef, durationMs: command.durationMs },
        },
      ];
    case 'execution-failed': {
      if (!isCurrent(state, command.executionId)) return [];
      if (command.retryable) {
        const reason: RequeueReason = command.reason === 'agent-restart' ? 'agent-restart' : 'infrastructure';
        return requeueOrFail(state, reason, `${command.reason}${command.detail ? `: ${command.detail}` : ''}`, command.exitCode);
      }
      return [
        {
          type: 'TaskFailed',
          data: { ...ref(state), attempt: state.attempt, reason: command.reason, ...(command.exitCode !== undefined ? { exitCode: command.exitCode } : {}) },
        },
      ];
    }
    case 'execution-timed-out':
      // A timeout is the function's own verdict (it would time out again): not retried.
      if (!isCurrent(state, command.executionId)) return [];
      return [{ type: 'TaskFailed', data: { ...ref(state), attempt: state.attempt, reason: `timeout: ran past ${command.timeoutMs} ms` } }];
    case 'execution-aborted':
      // 'cancelled' aborts follow our own TaskCancelled, 'superseded' ones our own TaskRequeued: nothing left to do.
      if (command.reason !== 'suspended' || !isCurrent(state, command.executionId)) return [];
      return requeueOrFail(state, 'aborted', 'wallet suspended');
    case 'start-timeout':
      // Dispatched, but the node never reported the start: give the attempt up. The node skips a
      // superseded dispatch it has not started yet and kills one it has (container-manager).
      if (state.status !== 'dispatched' || state.executionId !== command.executionId) return [];
      return requeueOrFail(state, 'infrastructure', command.detail);
    case 'execution-lost':
      // The node is alive but no longer runs this attempt and its result never reached us (its
      // Execution* events were lost): give the attempt up like an infrastructure failure. The caller
      // has checked the execution stream holds no result (that would be applied instead).
      if (!isCurrent(state, command.executionId)) return [];
      return requeueOrFail(state, 'infrastructure', command.detail);
    case 'node-lost':
      if (!isActive(state.status) || state.nodeId !== command.nodeId) return [];
      return requeueOrFail(state, command.reason, command.detail);
    case 'cancel': {
      if (state.status === 'none') throw new DomainError('unknown_task', `no task ${command.taskId}`);
      assertOwnsTask(command.caller, state, 'cancel');
      if (isTerminal(state.status)) throw new DomainError('task_finished', `task ${state.taskId} already ${state.status}: nothing to cancel`);
      const onNode = isActive(state.status) ? { executionId: state.executionId, nodeId: state.nodeId } : {};
      return [{ type: 'TaskCancelled', data: { ...ref(state), reason: command.reason, ...onNode } }];
    }
  }
}

export const taskDecider: Decider<TaskState, TaskCommand, TaskEvent> = {
  initialState: initialTaskState,
  evolve: evolveTask,
  decide: decideTask,
};

/** Deterministic event ids from the cause, so a retried append is harmless (dedup by id). */
export function taskEventId(event: TaskEvent): string {
  switch (event.type) {
    case 'TaskSubmitted':
      return `${event.data.taskId}-submitted`;
    case 'TaskDispatched':
      return `${event.data.taskId}-dispatched-${event.data.attempt}`;
    case 'TaskRunning':
      return `${event.data.taskId}-running-${event.data.attempt}`;
    case 'TaskRequeued':
      return `${event.data.taskId}-requeued-${event.data.attempt}`;
    case 'TaskSucceeded':
      return `${event.data.taskId}-succeeded`;
    case 'TaskFailed':
      return `${event.data.taskId}-failed`;
    case 'TaskCancelled':
      return `${event.data.taskId}-cancelled`;
  }
}

/**
 * Every event of a task shares one correlation id, the id of its TaskSubmitted, so the whole story
 * (dispatch, execution, charges) can be followed from the submission.
 */
export const toNewTaskEvent = (event: TaskEvent): NewEvent => ({
  id: taskEventId(event),
  type: event.type,
  data: event.data,
  correlationId: `${event.data.taskId}-submitted`,
});
