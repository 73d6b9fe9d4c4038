import { RetriesExhaustedError, retry } from '@mesh/common';
import { isEventOf, type EventDefinition, type EventUnion, type NewEvent, type RecordedEvent, type RecordedUnion } from '@mesh/contracts';
import { ConcurrencyError, EventStoreInvariantError } from './errors';
import type { EventStore, ExpectedVersion } from './port';

/** What deciders decide and evolve folds: a type and its data (a recorded event is one too). */
export interface DecidedEvent {
  type: string;
  data: unknown;
}

/**
 * Emmett-style decider: pure functions per aggregate. `decide` refuses by throwing (DomainError or
 * ContractError) and never performs I/O; `evolve` folds one event into the state.
 */
export interface Decider<State, Command, Event extends DecidedEvent> {
  initialState: () => State;
  evolve: (state: State, event: Event) => State;
  decide: (command: Command, state: State) => Event[];
}

/** A decider over the events of a list of definitions (a category's, e.g. `taskEvents`). */
export type DeciderOf<State, Command, Defs extends readonly EventDefinition[]> = Decider<State, Command, EventUnion<Defs>>;

export interface CommandResult<State, Event = DecidedEvent> {
  /** The stream the command was handled on. */
  stream: string;
  state: State;
  /** Events this command wrote (empty for an idempotent no-op). */
  events: NewEvent[];
  /** The same events as the decider decided them (typed), e.g. for a view's read-your-writes fold. */
  decided: Event[];
  nextExpectedVersion: number;
  /** Log position of the last event written; undefined for a no-op. */
  position?: bigint;
}

/** Bounded: beyond this many conflicts in a row the command fails instead of spinning. */
export const COMMAND_RETRIES_MAX = 20;

export interface HandleOptions<Event> {
  /** Turns each decided event into a NewEvent (id, correlation, causation). */
  toNew: (event: Event, index: number) => NewEvent;
  /** Retries after a ConcurrencyError (default COMMAND_RETRIES_MAX); beyond them the last ConcurrencyError is thrown. */
  retries?: number;
}

/**
 * The definitions of the stream's events (e.g. `taskEvents`): every recorded event is checked to be
 * one of them (`isEventOf`) before it is folded, so `evolve` gets typed events with no cast. The
 * definitions' recorded events must be events the decider folds; otherwise this type is `never`.
 */
export type EventsOf<Defs extends readonly EventDefinition[], Event> = Defs &
  ([RecordedUnion<Defs>] extends [Event] ? unknown : { 'the decider does not fold the events of these definitions': never });

/**
 * Load stream -> decide -> append with expected version -> retry on conflict (bounded). The thin
 * handler every service uses; the state comes from the log, never from a second copy.
 *
 * With `options.events` (the category's definitions) each recorded event is narrowed with
 * `isEventOf`; an event of another type in the stream is an invariant violation (the catalog checks
 * every append) and throws EventStoreInvariantError naming the stream, revision and type.
 */
export function handleCommand<State, Command, Event extends DecidedEvent, const Defs extends readonly EventDefinition[]>(
  store: EventStore,
  stream: string,
  decider: Decider<State, Command, Event>,
  command: Command,
  options: HandleOptions<Event> & { events: EventsOf<Defs, Event> },
): Promise<CommandResult<State, Event>>;
// The implementation works on plain decided events; the signature above is what keeps callers typed.
export async function handleCommand<State, Command>(
  store: EventStore,
  stream: string,
  decider: Decider<State, Command, DecidedEvent>,
  command: Command,
  options: HandleOptions<DecidedEvent> & { events: readonly EventDefinition[] },
): Promise<CommandResult<State>> {
  const retries = options.retries ?? COMMAND_RETRIES_MAX;
  const definitions = options.events;
  const attempt = async (): Promise<CommandResult<State>> => {
    const history = await store.read(stream);
    let state = decider.initialState();
    for (const recorded of history) {
      if (!isEventOf(recorded, definitions)) throw notOneOf(stream, recorded, definitions);
      state = decider.evolve(state, recorded);
    }
    const version: ExpectedVersion = history.length === 0 ? 'no_stream' : history[history.length - 1].revision;
    const decided = decider.decide(command, state);
    // The last revision, not the count: revisions may skip where a deleted or quarantined message was.
    if (decided.length === 0) return { stream, state, events: [], decided, nextExpectedVersion: typeof version === 'number' ? version : -1 };
    const events = decided.map(options.toNew);
    const result = await store.append(stream, events, version);
    for (const event of decided) state = decider.evolve(state, event);
    return { stream, state, events, decided, nextExpectedVersion: result.nextExpectedVersion, position: result.position };
  };
  try {
    // No backoff worth the name: a conflict means the stream moved, and the reload is the wait.
    return await retry(`command on ${stream}`, attempt, { attempts: retries + 1, baseDelayMs: 0, retryable: (err) => err instanceof ConcurrencyError });
  } catch (err) {
    // Callers (and the request replies) tell a lost race by its type: the last conflict, not a wrapper.
    if (err instanceof RetriesExhaustedError && err.cause instanceof ConcurrencyError) throw err.cause;
    throw err;
  }
}

function notOneOf(stream: string, event: RecordedEvent, definitions: readonly EventDefinition[]): EventStoreInvariantError {
  return new EventStoreInvariantError(
    `stream ${stream}: revision ${event.revision} is a ${event.type}, not one of ${definitions.map((d) => d.type).join('|')}`,
    stream,
    event.revision,
  );
}
