import assert from 'node:assert/strict';
import type { EventDefinition } from '@mesh/contracts';
import { handleCommand, type CommandResult, type Decider, type HandleOptions } from '@mesh/eventstore/decider';
import type { EventStore } from '@mesh/eventstore/port';

/** A command's result plus the typed events it decided (those `events` holds), for the view's read-your-writes fold. */
export interface TypedCommandResult<State, Event> extends CommandResult<State> {
  stream: string;
  decided: Event[];
}

/**
 * handleCommand (load, decide, append with expected version, retry on conflict) keeping the decided
 * events typed: it decides once per attempt, and the last decision is the one appended (or the
 * no-op returned). `events` are the definitions of the stream's category, for a handleCommand that
 * checks the recorded events against them before folding.
 */
export async function handleTypedCommand<State, Command, Event extends { type: string; data: unknown }>(
  store: EventStore,
  stream: string,
  decider: Decider<State, Command, Event>,
  command: Command,
  options: HandleOptions<Event> & { events: readonly EventDefinition[] },
): Promise<TypedCommandResult<State, Event>> {
  let decided: Event[] = [];
  const recording: Decider<State, Command, Event> = { ...decider, decide: (c, state) => (decided = decider.decide(c, state)) };
  const result = await handleCommand(store, stream, recording, command, options);
  assert.equal(decided.length, result.events.length, `${stream}: the events written are not the ones decided last`);
  return { ...result, stream, decided };
}
