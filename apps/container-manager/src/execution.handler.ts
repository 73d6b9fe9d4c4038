import { executionEvents, isEventOf, streamName, type RecordedEvent } from '@mesh/contracts';
import type { EventStore } from '@mesh/eventstore/port';
import { decideAndAppend, type Known } from './append';
import { eventId } from './domain/event-ids';
import { evolveExecution, executionDecider, initialExecutionState, type ExecutionCommand, type ExecutionState } from './domain/execution-decider';

/** An execution stream that does not exist yet. */
export const NEW_EXECUTION: Known<ExecutionState> = { state: initialExecutionState(), version: -1 };

/** The folded state of an execution stream. */
export function foldExecution(executionId: string, history: RecordedEvent[]): Known<ExecutionState> {
  let state = initialExecutionState();
  for (const event of history) {
    if (!isEventOf(event, executionEvents)) throw new Error(`execution ${executionId}: ${event.type} is not an execution event`);
    state = evolveExecution(state, event);
  }
  return { state, version: history.length - 1 };
}

/**
 * Loads, decides and appends the execution aggregate (stream `execution-<executionId>`). Event ids
 * are `<executionId>-started` and `<executionId>-end`: one id for every terminal event, so two
 * competing endings can never both be stored.
 */
export class ExecutionHandler {
  constructor(private readonly store: EventStore) {}

  async load(executionId: string): Promise<Known<ExecutionState>> {
    return foldExecution(executionId, await this.store.read(streamName('execution', executionId)));
  }

  /** Decides against `known` (by default: a new stream), reloading on a conflict. Resolves to what is now known. */
  handle(executionId: string, command: ExecutionCommand, known: Known<ExecutionState> = NEW_EXECUTION): Promise<Known<ExecutionState>> {
    return decideAndAppend(
      this.store,
      streamName('execution', executionId),
      executionDecider,
      command,
      known,
      () => this.load(executionId),
      (event) => ({ id: eventId(executionId, event.type === 'ExecutionStarted' ? 'started' : 'end'), type: event.type, data: event.data }),
    );
  }
}
