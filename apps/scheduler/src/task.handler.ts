import assert from 'node:assert/strict';
import { Inject, Injectable } from '@nestjs/common';
import { DomainError, isEventOf, streamName, taskEvents, type RecordedTaskEvent, type TaskDetail, type TaskEvent, type TaskStateName } from '@mesh/contracts';
import type { EventStore } from '@mesh/eventstore/port';
import { EVENT_STORE } from '@mesh/runtime';
import { evolveTask, initialTaskState, taskDecider, toNewTaskEvent, type TaskCommand, type TaskState } from './domain/task-decider';
import { handleCommand, type CommandResult } from '@mesh/eventstore/decider';

export type TaskResult = CommandResult<TaskState, TaskEvent>;

/** The task aggregate (stream `task-<taskId>`) against the store: commands through the task decider, and the task query. */
@Injectable()
export class TaskHandler {
  constructor(@Inject(EVENT_STORE) private readonly store: EventStore) {}

  /** Load -> decide -> append with the expected version, retried on conflict (`retries` times at most, default bounded). */
  handle(taskId: string, command: TaskCommand, retries?: number): Promise<TaskResult> {
    return handleCommand(this.store, streamName('task', taskId), taskDecider, command, { toNew: toNewTaskEvent, retries, events: taskEvents });
  }

  /** The recorded events of a task (a task stream holds only task events: the store checks categories). */
  async history(taskId: string): Promise<RecordedTaskEvent[]> {
    const stream = streamName('task', taskId);
    return (await this.store.read(stream)).map((event) => {
      assert(isEventOf(event, taskEvents), `${stream} holds a ${event.type}`);
      return event;
    });
  }

  /**
   * The task query's answer from the task's recorded events (`history`): its state and history from
   * the stream, so it works for tasks the view no longer holds.
   */
  detailOf(taskId: string, events: RecordedTaskEvent[]): TaskDetail {
    if (events.length === 0) throw new DomainError('unknown_task', `no task ${taskId}`);
    let state = initialTaskState();
    const detail: Partial<TaskDetail> = {};
    const history: TaskDetail['history'] = [];
    for (const event of events) {
      state = evolveTask(state, event);
      const d = event.data;
      if (event.type === 'TaskSucceeded') Object.assign(detail, { outputRef: event.data.outputRef, durationMs: event.data.durationMs });
      if (event.type === 'TaskFailed' && typeof event.data.exitCode === 'number') detail.exitCode = event.data.exitCode;
      if (event.type === 'TaskRunning') detail.containerId = event.data.containerId;
      if (event.type === 'TaskDispatched' || event.type === 'TaskRequeued') detail.containerId = undefined;
      history.push(
        dropUndefined({
          position: event.position.toString(),
          revision: event.revision,
          type: event.type,
          occurredAt: event.occurredAt,
          state: stateName(state),
          attempt: 'attempt' in d ? d.attempt : undefined,
          nodeId: 'nodeId' in d ? d.nodeId : undefined,
          executionId: 'executionId' in d ? d.executionId : undefined,
          containerId: 'containerId' in d ? d.containerId : undefined,
          reason: ('reason' in d ? d.reason : undefined) ?? ('detail' in d ? d.detail : undefined),
          exitCode: 'exitCode' in d ? d.exitCode : undefined,
        }),
      );
    }
    const active = state.status === 'dispatched' || state.status === 'running';
    const last = history[history.length - 1];
    return dropUndefined({
      taskId,
      functionId: state.functionId,
      walletId: state.walletId,
      state: stateName(state),
      priority: state.priority,
      attempt: state.attempt,
      maxAttempts: state.maxAttempts,
      nodeId: active ? state.nodeId : [...history].reverse().find((h) => h.nodeId)?.nodeId,
      executionId: state.executionId,
      containerId: detail.containerId,
      reason: state.status === 'pending' && state.attempt === 1 ? undefined : (state.reason ?? (last.type === 'TaskRequeued' ? last.reason : undefined)),
      exitCode: detail.exitCode,
      outputRef: detail.outputRef,
      durationMs: detail.durationMs,
      submittedAtMs: state.submittedAtMs,
      history,
    });
  }
}

/** A task with events has left 'none' (its first event is TaskSubmitted). */
function stateName(state: TaskState): TaskStateName {
  assert(state.status !== 'none', `task ${state.taskId || '?'} has events but no state`);
  return state.status;
}

export function dropUndefined<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T;
}
