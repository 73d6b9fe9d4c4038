import { catalog, type NewEvent, type RecordedEvent } from '@mesh/contracts';
import { assertContiguousRevisions, ConcurrencyError, DuplicateEventError } from '../errors';
import { eventDataProblem, PoisonMessage, subjectOfStream } from '../poison';
import { encodeEnvelope, prepareEnvelopes, type StoredEnvelope } from '../envelope';
import {
  READ_BATCH_MAX,
  type AppendResult,
  type EventHandler,
  type EventStore,
  type ExpectedVersion,
  type PoisonOptions,
  type ReadAllOptions,
  type Subscription,
  type SubscriptionOptions,
} from '../port';

/**
 * The state of one in-memory log, shared by every InMemoryEventStore opened on it: several stores
 * on one log behave like several clients of one server (what the contract suite's `open()` needs).
 */
export class InMemoryLog {
  /** Every event in position order; position p is at index p - 1. */
  readonly events: RecordedEvent[] = [];
  readonly streams = new Map<string, RecordedEvent[]>();
  /** Event ids are unique across the whole log, as JetStream's stream-wide Nats-Msg-Id dedup makes them. */
  readonly byId = new Map<string, RecordedEvent>();
  private readonly listeners = new Set<() => void>();

  /** Resolves at the next append (or when `cancel` is called). */
  nextAppend(): { appended: Promise<void>; cancel: () => void } {
    let wake: () => void = () => undefined;
    const appended = new Promise<void>((resolve) => (wake = resolve));
    this.listeners.add(wake);
    return {
      appended,
      cancel: () => {
        this.listeners.delete(wake);
        wake();
      },
    };
  }

  notify(): void {
    const woken = [...this.listeners];
    this.listeners.clear();
    for (const wake of woken) wake();
  }
}

/**
 * The EventStore port in memory, for unit specs and tools that need no server. It passes the same
 * contract suite as the JetStream and KurrentDB adapters: envelopes are checked and size-limited
 * the same way, expected versions are enforced, a retry of events already written after the
 * expected version (the whole batch or a prefix of it) succeeds without duplicates, event ids are
 * unique across the log, and subscriptions deliver in position order from a checkpoint.
 * Readers get copies: mutating what `read` returns never changes the log (`log` is the live log,
 * for specs that tamper with history on purpose). Every read checks each event's type and data
 * against the catalog as JetStream's does (decodeMessage): an event tampered into poison is skipped
 * by `read`, `readAll` and `subscribe` and reported to `onPoison`; unlike JetStream no quarantine
 * record is written (the log here is the specs' own, and stays as they made it).
 */
export class InMemoryEventStore implements EventStore {
  readonly name = 'memory';
  private readonly subscriptions = new Set<Subscription>();

  constructor(private readonly memory: InMemoryLog = new InMemoryLog()) {}

  /** Another client of the same log (as a second process would be). */
  connect(): InMemoryEventStore {
    return new InMemoryEventStore(this.memory);
  }

  /** The live log in position order (not copies). */
  get log(): readonly RecordedEvent[] {
    return this.memory.events;
  }

  // Nothing below awaits between the checks and the writes, so an append is atomic like a server's.
  async append(stream: string, events: NewEvent[], expectedVersion: ExpectedVersion): Promise<AppendResult> {
    const envelopes = prepareEnvelopes(stream, events);
    const payloads = envelopes.map(encodeEnvelope);
    if (expectedVersion !== 'any' && expectedVersion !== 'no_stream' && (!Number.isInteger(expectedVersion) || expectedVersion < -1)) {
      throw new TypeError(`expectedVersion must be an integer >= -1, 'no_stream' or 'any', got ${String(expectedVersion)}`);
    }
    const existing = this.memory.streams.get(stream) ?? [];
    const tail = existing.length - 1;
    let expected: number;
    if (expectedVersion === 'any') {
      // A retried 'any' append: continue from where its first event already sits.
      const first = this.memory.byId.get(envelopes[0].id);
      expected = first?.stream === stream ? first.revision - 1 : tail;
    } else {
      expected = expectedVersion === 'no_stream' ? -1 : expectedVersion;
    }
    // Events of this batch already in the stream right after `expected` (an earlier, interrupted attempt).
    let written = 0;
    while (written < envelopes.length && existing[expected + 1 + written]?.id === envelopes[written].id) written++;
    if (written === envelopes.length) return { nextExpectedVersion: expected + written, position: existing[expected + written].position };
    if (tail !== expected + written) throw new ConcurrencyError(stream, expectedVersion, tail);
    for (let i = written; i < envelopes.length; i++) {
      const other = this.memory.byId.get(envelopes[i].id);
      if (other) throw new DuplicateEventError(envelopes[i].id, `already appended to ${other.stream} at revision ${other.revision}`);
    }
    for (let i = written; i < envelopes.length; i++) {
      const recorded = decode(payloads[i], existing.length, BigInt(this.memory.events.length + 1));
      existing.push(recorded);
      this.memory.events.push(recorded);
      this.memory.byId.set(recorded.id, recorded);
    }
    this.memory.streams.set(stream, existing);
    this.memory.notify();
    const last = existing[existing.length - 1];
    return { nextExpectedVersion: last.revision, position: last.position };
  }

  async read(stream: string, fromRevision = 0): Promise<RecordedEvent[]> {
    const stored = (this.memory.streams.get(stream) ?? []).slice(Math.max(0, fromRevision));
    // Revisions as stored are dense; a gap in what is returned is explained by the poison skipped.
    assertContiguousRevisions(stream, stored, Math.max(0, fromRevision));
    return stored.filter((event) => !poisonOf(event)).map(copy);
  }

  async readAll(options: ReadAllOptions): Promise<RecordedEvent[]> {
    const limit = Math.min(options.limit ?? READ_BATCH_MAX, READ_BATCH_MAX);
    if (limit <= 0) return [];
    const events: RecordedEvent[] = [];
    // Poison is skipped, so a page is refilled until it holds `limit` events or reaches the head (as JetStream's).
    for (let at = Number(options.from < 1n ? 1n : options.from) - 1; at < this.memory.events.length && events.length < limit; at++) {
      const { traceparent: _traceparent, ...event } = this.memory.events[at];
      if (!reportedPoison(event, options)) events.push(copy(event));
    }
    return events;
  }

  async headPosition(): Promise<bigint> {
    return BigInt(this.memory.events.length);
  }

  subscribe(options: SubscriptionOptions, handler: EventHandler): Subscription {
    const wanted = options.categories ? new Set(options.categories) : undefined;
    let position = options.after < 0n ? 0n : options.after;
    let stopped = false;
    let waiting: { cancel: () => void } | undefined;
    const run = async () => {
      while (!stopped) {
        const next = this.memory.events[Number(position)]; // the event at position + 1
        if (!next) {
          const wait = this.memory.nextAppend();
          waiting = wait;
          await wait.appended;
          continue;
        }
        if ((!wanted || wanted.has(next.stream.slice(0, next.stream.indexOf('-')))) && !reportedPoison(next, options)) await handler(copy(next));
        position = next.position;
      }
    };
    const done = run();
    done.catch(() => undefined); // surfaced through `done`
    const subscription: Subscription = {
      get position() {
        return position;
      },
      done,
      stop: async () => {
        stopped = true;
        waiting?.cancel();
        this.subscriptions.delete(subscription);
        await done.catch(() => undefined);
      },
    };
    this.subscriptions.add(subscription);
    return subscription;
  }

  /** Stops this client's subscriptions; the log (and other clients on it) stay. */
  async close(): Promise<void> {
    await Promise.all([...this.subscriptions].map((s) => s.stop()));
  }
}

/** The decode boundary of this adapter: the stored JSON (as JetStream would hold it) back into an event. */
function decode(json: string, revision: number, position: bigint): RecordedEvent {
  const envelope = JSON.parse(json) as StoredEnvelope;
  return { ...envelope, revision, position };
}

/**
 * The poison an event of the log is (a spec tampered with its type or data), or undefined: the same
 * check as decodeMessage's, except that a type not in the catalog at all is passed through (JetStream
 * would skip it): specs of the readers' own guards append such events on purpose (decider.spec.ts).
 */
function poisonOf(event: RecordedEvent): PoisonMessage | undefined {
  if (!catalog.get(event.type)) return undefined;
  const problem = eventDataProblem(event.stream.slice(0, event.stream.indexOf('-')), event.type, event.data);
  return problem === undefined ? undefined : new PoisonMessage(Number(event.position), subjectOfStream(event.stream), problem);
}

/** True when `event` is poison, after telling `onPoison` of it. */
function reportedPoison(event: RecordedEvent, options: PoisonOptions): boolean {
  const poison = poisonOf(event);
  if (poison) options.onPoison?.(poison);
  return poison !== undefined;
}

function copy(event: RecordedEvent): RecordedEvent {
  return { ...event, data: structuredClone(event.data) };
}
