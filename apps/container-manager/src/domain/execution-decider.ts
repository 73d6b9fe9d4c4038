import type { EventData, ExecutionEvent, ExecutionFailed, ExecutionStarted } from '@mesh/contracts';
import type { Decider } from '@mesh/eventstore/decider';

/**
 * The execution aggregate (stream `execution-<executionId>`, one attempt of a task on this node):
 *   none -> started (ExecutionStarted) -> ended (one terminal event)
 *   none -> ended (a failure before the script could start: input or image missing, Docker down).
 * Invariant: exactly one terminal event per execution. A second ending, or a start after the end,
 * decides nothing (the event ids `<executionId>-started` / `<executionId>-end` make the same true
 * for two writers racing on the store).
 */
export type ExecutionStartedData = EventData<typeof ExecutionStarted>;
export type ExecutionFailedData = EventData<typeof ExecutionFailed>;
export type TerminalExecutionEvent = Exclude<ExecutionEvent, { type: 'ExecutionStarted' }>;

/** What identifies an execution in its events (the executionRef of the contracts). */
export type ExecutionRef = Pick<ExecutionStartedData, 'executionId' | 'taskId' | 'attempt' | 'containerId' | 'nodeId' | 'walletId' | 'functionId'>;

export interface ExecutionState {
  status: 'none' | 'started' | 'ended';
  started?: ExecutionStartedData;
  end?: TerminalExecutionEvent['type'];
}

export type ExecutionCommand =
  /** The script started running (`startedAtMs` = the runner's start byte). */
  | { kind: 'start'; started: ExecutionStartedData }
  /** The node decided how the execution ended (script exit, timeout, abort, failure to start). */
  | { kind: 'end'; end: TerminalExecutionEvent }
  /**
   * The container-manager went away under the execution (restart, or shutdown while it ran): it
   * fails with reason `agent-restart` (retryable). Built from the recorded start; without one, from
   * `unstarted` when given (a shutdown before the start was recorded), else nothing is known to end.
   */
  | { kind: 'interrupt'; detail: string; nowMs: number; unstarted?: ExecutionRef & { startedAtMs: number } };

export function initialExecutionState(): ExecutionState {
  return { status: 'none' };
}

export function evolveExecution(state: ExecutionState, event: ExecutionEvent): ExecutionState {
  if (state.status === 'ended') return state;
  if (event.type === 'ExecutionStarted') return { status: 'started', started: event.data };
  return { ...state, status: 'ended', end: event.type };
}

/** The one agent-restart failure: the container-manager was not there to see the script end. */
export function interruptedFailure(ref: ExecutionRef & { startedAtMs: number }, detail: string, nowMs: number): TerminalExecutionEvent {
  const data: ExecutionFailedData = {
    executionId: ref.executionId,
    taskId: ref.taskId,
    attempt: ref.attempt,
    containerId: ref.containerId,
    nodeId: ref.nodeId,
    walletId: ref.walletId,
    functionId: ref.functionId,
    reason: 'agent-restart',
    retryable: true,
    stderrTail: detail,
    durationMs: Math.max(0, nowMs - ref.startedAtMs),
  };
  return { type: 'ExecutionFailed', data };
}

export function decideExecution(command: ExecutionCommand, state: ExecutionState): ExecutionEvent[] {
  if (state.status === 'ended') return [];
  switch (command.kind) {
    case 'start':
      return state.status === 'none' ? [{ type: 'ExecutionStarted', data: command.started }] : [];
    case 'end':
      return [command.end];
    case 'interrupt': {
      const ref = state.started ?? command.unstarted;
      return ref ? [interruptedFailure(ref, command.detail, command.nowMs)] : [];
    }
  }
}

export const executionDecider: Decider<ExecutionState, ExecutionCommand, ExecutionEvent> = {
  initialState: initialExecutionState,
  evolve: evolveExecution,
  decide: decideExecution,
};
