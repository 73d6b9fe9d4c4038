import type { NewEvent } from '@mesh/contracts';
import { ConcurrencyError } from './errors';
import type { EventStore, ExpectedVersion } from './port';

/**
 * Emmett-style decider: pure functions per aggregate. `decide` refuses by throwing (DomainError or
 * ContractError) and never performs I/O; `evolve` folds one event into the state.
 */
export interface Decider<State, Command, Event extends { type: string; data: unknown }> {
  initialState: () => State;
  evolve: (state: State, event: Event) => State;
  decide: (command: Command, state: State) => Event[];
}

export interface CommandResult<State> {
  state: State;
  /** Events this command wrote (empty for an idempotent no-op). */
  events: NewEvent[];
  nextExpectedVersion: number;
  /** Log position of the last event written; undefined for a no-op. */
  position?: bigint;
}

/** Bounded: beyond this many conflicts in a row the command fails instead of spinning. */
export const COMMAND_RETRIES_MAX = 20;

export interface HandleOptions<Event> {
  /** Turns each decided event into a NewEvent (id, correlation, causation). */
  toNew: (event: Event, index: number) => NewEvent;
  retries?: number;
}

/**
 * Load stream -> decide -> append with expected version -> retry on conflict. The thin handler
 * every service uses; the state comes from the log, never from a second copy.
 */
export async function handleCommand<State, Command, Event extends { type: string; data: unknown }>(
  store: EventStore,
  stream: string,
  decider: Decider<State, Command, Event>,
  command: Command,
  options: HandleOptions<Event>,
): Promise<CommandResult<State>> {
  const retries = options.retries ?? COMMAND_RETRIES_MAX;
  for (let attempt = 0; ; attempt++) {
    const history = await store.read(stream);
    let state = decider.initialState();
    for (const recorded of history) state = decider.evolve(state, recorded as unknown as Event);
    const version: ExpectedVersion = history.length === 0 ? 'no_stream' : history[history.length - 1].revision;
    const decided = decider.decide(command, state);
    if (decided.length === 0) return { state, events: [], nextExpectedVersion: history.length - 1 };
    try {
      const events = decided.map(options.toNew);
      const result = await store.append(stream, events, version);
      for (const event of decided) state = decider.evolve(state, event);
      return { state, events, nextExpectedVersion: result.nextExpectedVersion, position: result.position };
    } catch (err) {
      if (!(err instanceof ConcurrencyError) || attempt >= retries) throw err;
    }
  }
}
