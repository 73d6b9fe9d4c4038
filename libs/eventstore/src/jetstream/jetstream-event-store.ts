import {
  headers as natsHeaders,
  nanos,
  DiscardPolicy,
  NatsError,
  RetentionPolicy,
  StorageType,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
  type MsgHdrs,
  type NatsConnection,
  type ConsumerMessages,
  type StoredMsg,
} from 'nats';

import { messageOf, RetriesExhaustedError, retry } from '@mesh/common';
import { EVENTS_PREFIX, EVENTS_STREAM, streamForSubject, subjectForStream, type NewEvent, type RecordedEvent } from '@mesh/contracts';
import { ended, producerSpan } from '@mesh/runtime/trace';
import { assertContiguousRevisions, ConcurrencyError, DuplicateEventError, EventStoreInvariantError } from '../errors';
import { encodeEnvelope, prepareEnvelopes, type StoredEnvelope } from '../envelope';
import {
  READ_BATCH_MAX,
  type AppendResult,
  type EventHandler,
  type EventStore,
  type ExpectedVersion,
  type ReadAllOptions,
  type Subscription,
  type SubscriptionOptions,
} from '../port';

/** The manager nats.js returns has the direct-get API; its public interface just doesn't list it. */
type Manager = JetStreamManager & { direct: { getMessage(stream: string, query: { seq?: number; last_by_subj?: string }): Promise<StoredMsg> } };

export const REVISION_HEADER = 'Mesh-Revision';
export const TYPE_HEADER = 'Mesh-Type';
/** JSStreamWrongLastSequenceErrF: the expected-last-subject-sequence check failed. */
const WRONG_LAST_SEQUENCE = 10071;
/** Bounded attempts of one append racing other writers (`any` appends; a lost expected version fails at the first re-check). */
const APPEND_ATTEMPTS_MAX = 51;
/** Known stream tails; bounded so a writer touching millions of streams doesn't grow without limit. */
const TAIL_CACHE_MAX = 50_000;
/** A fetch normally completes as soon as its messages arrive; this only bounds a stalled one. */
const FETCH_EXPIRES_MS = 10_000;

export interface JetStreamEventStoreOptions {
  streamName?: string;
  /** Replicas of the event stream: 1 locally, 3 in a NATS cluster. */
  replicas?: number;
  /** JetStream dedup window for Nats-Msg-Id; beyond it, idempotency comes from the revision check. */
  duplicateWindowMs?: number;
}

interface Tail {
  revision: number; // -1 when the stream has no events
  seq: number; // stream sequence of the last event, 0 when none
}

/**
 * Event store on one JetStream stream. Each event is one message on `mesh.events.<category>.<id>`;
 * its per-stream revision travels in a header, and every append is conditioned on the stream's last
 * message with Nats-Expected-Last-Subject-Sequence, so exactly one of several racing writers wins.
 */
export class JetStreamEventStore implements EventStore {
  readonly name = 'jetstream';
  private readonly tails = new Map<string, Tail>();

  private constructor(
    private readonly nc: NatsConnection,
    private readonly js: JetStreamClient,
    private readonly jsm: Manager,
    private readonly stream: string,
  ) {}

  static async connect(nc: NatsConnection, options: JetStreamEventStoreOptions = {}): Promise<JetStreamEventStore> {
    const stream = options.streamName ?? EVENTS_STREAM;
    const jsm = await nc.jetstreamManager();
    const config = {
      name: stream,
      subjects: [`${EVENTS_PREFIX}.>`],
      storage: StorageType.File,
      retention: RetentionPolicy.Limits,
      discard: DiscardPolicy.Old,
      num_replicas: options.replicas ?? 1,
      duplicate_window: nanos(options.duplicateWindowMs ?? 120_000),
      allow_direct: true,
      max_msg_size: 1024 * 1024,
    };
    try {
      await jsm.streams.info(stream);
    } catch (err) {
      if (!isNotFound(err)) throw err;
      try {
        await jsm.streams.add(config);
      } catch (addErr) {
        // Another service created it at the same moment: fine.
        if (!messageOf(addErr).includes('already in use')) throw addErr;
      }
    }
    return new JetStreamEventStore(nc, nc.jetstream(), jsm as Manager, stream);
  }

  async append(stream: string, events: NewEvent[], expectedVersion: ExpectedVersion): Promise<AppendResult> {
    const envelopes = prepareEnvelopes(stream, events);
    // Encoded (and size-checked) once, before anything is written; the revision is spliced in per
    // publish because only then is it known.
    const payloads = envelopes.map(encodeEnvelope);
    const subject = subjectForStream(stream);
    const expected = expectedVersion === 'no_stream' ? -1 : expectedVersion;
    if (expected !== 'any' && (!Number.isInteger(expected) || expected < -1)) {
      throw new TypeError(`expectedVersion must be an integer >= -1, 'no_stream' or 'any', got ${String(expectedVersion)}`);
    }
    let tail = this.cachedTail(subject, expected) ?? (await this.readTail(subject));
    let written = 0; // events of this batch already in the stream (an earlier, interrupted attempt)
    const attempt = async (): Promise<AppendResult> => {
      if (expected !== 'any' && tail.revision !== expected + written) {
        written = await this.countAlreadyAppended(stream, expected, envelopes);
        if (written === envelopes.length) return { nextExpectedVersion: expected + written, position: BigInt(tail.seq) };
        if (tail.revision !== expected + written) throw new ConcurrencyError(stream, expectedVersion, tail.revision);
      }
      try {
        for (let i = written; i < envelopes.length; i++) {
          tail = await this.publishOne(subject, envelopes[i], payloads[i], tail);
          written = i + 1;
        }
      } catch (err) {
        if (isWrongLastSequence(err)) {
          // Another writer moved the stream: forget the cached tail and retry from the real one
          // ('any' keeps what this batch already wrote and goes on after the new tail).
          this.tails.delete(subject);
          tail = await this.readTail(subject);
        }
        throw err;
      }
      this.remember(subject, tail);
      return { nextExpectedVersion: tail.revision, position: BigInt(tail.seq) };
    };
    try {
      // The first attempt directly (the hot path: one publish round trip); a lost race goes to retry.
      return await attempt();
    } catch (err) {
      if (!isWrongLastSequence(err)) throw err;
    }
    try {
      // No backoff: the tail was just re-read, so the next attempt is conditioned on the current state.
      return await retry(`append to ${stream}`, attempt, { attempts: APPEND_ATTEMPTS_MAX - 1, baseDelayMs: 0, retryable: isWrongLastSequence });
    } catch (err) {
      if (err instanceof RetriesExhaustedError) throw new ConcurrencyError(stream, expectedVersion, tail.revision, { cause: err });
      throw err;
    }
  }

  private async publishOne(subject: string, envelope: StoredEnvelope, encoded: string, tail: Tail): Promise<Tail> {
    const revision = tail.revision + 1;
    // The body carries the revision too, so readers need not decode headers (the costliest part of
    // reading an event) and plain subscribers see it in the JSON.
    const payload = Buffer.from(`${encoded.slice(0, -1)},"revision":${revision}}`);
    const h = natsHeaders();
    h.set('Nats-Msg-Id', envelope.id);
    h.set('Nats-Expected-Last-Subject-Sequence', String(tail.seq));
    h.set(REVISION_HEADER, String(revision));
    h.set(TYPE_HEADER, envelope.type);
    const { traceparent, span } = producerSpan(`publish ${envelope.type}`, () => ({
      'messaging.system': 'nats',
      'messaging.destination.name': subject,
      'messaging.message.id': envelope.id,
      'mesh.event.stream': envelope.stream,
      'mesh.event.revision': revision,
    }));
    h.set('traceparent', traceparent);
    const ack = await ended(span, () => this.js.publish(subject, payload, { headers: h }));
    if (!ack.duplicate) return { revision, seq: ack.seq };
    // Within the dedup window JetStream answers a retry with the original sequence: make sure the
    // original is this very event on this stream, and continue from where it really sits.
    const original = await this.jsm.direct.getMessage(this.stream, { seq: ack.seq });
    if (original.subject !== subject) {
      throw new DuplicateEventError(envelope.id, `already appended to ${streamForSubject(original.subject)}`);
    }
    return { revision: Number(original.header.get(REVISION_HEADER)), seq: ack.seq };
  }

  /** How many of `envelopes` already follow revision `expected` in the stream, by event id. */
  private async countAlreadyAppended(stream: string, expected: number, envelopes: StoredEnvelope[]): Promise<number> {
    const existing = await this.read(stream, expected + 1);
    let count = 0;
    while (count < envelopes.length && count < existing.length && existing[count].id === envelopes[count].id) count++;
    return count;
  }

  private cachedTail(subject: string, expected: number | 'any'): Tail | undefined {
    const tail = this.tails.get(subject);
    return tail && tail.revision === expected ? tail : undefined;
  }

  private remember(subject: string, tail: Tail): void {
    if (this.tails.size >= TAIL_CACHE_MAX) this.tails.delete(this.tails.keys().next().value as string);
    this.tails.set(subject, tail);
  }

  private async readTail(subject: string): Promise<Tail> {
    try {
      const last = await this.jsm.direct.getMessage(this.stream, { last_by_subj: subject });
      return { revision: Number(last.header.get(REVISION_HEADER)), seq: last.seq };
    } catch (err) {
      if (isNotFound(err)) return { revision: -1, seq: 0 };
      throw err;
    }
  }

  async read(stream: string, fromRevision = 0): Promise<RecordedEvent[]> {
    const subject = subjectForStream(stream);
    const tail = await this.readTail(subject);
    if (tail.revision < fromRevision) return [];
    // Revisions are dense (0..tail.revision), so the subject holds exactly tail.revision + 1 messages.
    const all = await this.fetchRange(subject, 1, tail.revision + 1);
    assertContiguousRevisions(stream, all, 0);
    return fromRevision > 0 ? all.filter((e) => e.revision >= fromRevision) : all;
  }

  async readAll(options: ReadAllOptions): Promise<RecordedEvent[]> {
    const limit = Math.min(options.limit ?? READ_BATCH_MAX, READ_BATCH_MAX);
    const from = options.from < 1n ? 1n : options.from;
    const head = await this.headPosition();
    if (from > head || limit <= 0) return [];
    // Stream sequences are dense too: nothing is ever deleted from the event stream.
    const count = Math.min(limit, Number(head - from) + 1);
    return this.fetchRange(undefined, Number(from), count, false);
  }

  async headPosition(): Promise<bigint> {
    const info = await this.jsm.streams.info(this.stream);
    return BigInt(info.state.last_seq);
  }

  /**
   * Fetches exactly `count` messages of `filter` (undefined = the whole log) from `fromSeq` with an
   * ordered consumer. A fetch of a known count ends as soon as the last one arrives; breaking out of
   * a consume() early instead waits for its pull to wind down (measured ~0.7 s per call). The
   * whole-log read passes no filter at all: nats-server 2.9 takes up to seconds to create a consumer
   * filtered on `mesh.events.>` that starts mid-stream, and none without a filter (measured).
   */
  private async fetchRange(filter: string | undefined, fromSeq: number, count: number, withTrace = true): Promise<RecordedEvent[]> {
    const events: RecordedEvent[] = [];
    if (count <= 0) return events;
    const consumer = await this.js.consumers.get(this.stream, { ...(filter ? { filterSubjects: filter } : {}), opt_start_seq: fromSeq });
    while (events.length < count) {
      const batch = Math.min(count - events.length, READ_BATCH_MAX);
      const before = events.length;
      const messages = await consumer.fetch({ max_messages: batch, expires: FETCH_EXPIRES_MS });
      if (filter) {
        for await (const m of messages) events.push(decode(m, withTrace));
      } else {
        // The whole log is dense (nothing is ever deleted from the event stream), so the position
        // of each message is known without parsing its reply subject (a third of the cost of a
        // replay, measured). The last message's real sequence is checked below.
        let last: JsMsg | undefined;
        for await (const m of messages) {
          events.push(decode(m, withTrace, fromSeq + events.length));
          last = m;
        }
        if (last && last.seq !== fromSeq + events.length - 1) {
          throw new EventStoreInvariantError(
            `event store read: the log is not dense (seq ${last.seq} at index ${events.length - 1} from ${fromSeq}); was a message deleted from ${this.stream}?`,
          );
        }
      }
      if (events.length === before)
        throw new EventStoreInvariantError(`event store read stalled at ${filter} seq >= ${fromSeq}: expected ${count} events, got ${before}`);
    }
    return events;
  }

  subscribe(options: SubscriptionOptions, handler: EventHandler): Subscription {
    const only = options.categories && options.categories.length === 1 ? options.categories[0] : undefined;
    // No filter for the whole log (see fetchRange); a category filter for one category.
    const filter = only ? `${EVENTS_PREFIX}.${only}.*` : undefined;
    const wanted = options.categories && !only ? new Set(options.categories) : undefined;
    let position = options.after;
    let messages: ConsumerMessages | undefined;
    let stopped = false;
    const run = async () => {
      const consumer = await this.js.consumers.get(this.stream, { ...(filter ? { filterSubjects: filter } : {}), opt_start_seq: Number(options.after) + 1 });
      if (stopped) return;
      messages = await consumer.consume({ max_messages: 512, idle_heartbeat: 2000 });
      for await (const m of messages) {
        const event = decode(m);
        if (!wanted || wanted.has(event.stream.slice(0, event.stream.indexOf('-')))) await handler(event);
        position = event.position;
        if (stopped) break;
      }
    };
    const done = run();
    done.catch(() => undefined); // surfaced through `done`
    return {
      get position() {
        return position;
      },
      done,
      stop: async () => {
        stopped = true;
        await messages?.close().catch(() => undefined);
        await done.catch(() => undefined);
      },
    };
  }

  async close(): Promise<void> {
    this.tails.clear();
  }

  /** For tests and benchmarks: the connection this store publishes on. */
  get connection(): NatsConnection {
    return this.nc;
  }
}

/**
 * A stored message as a RecordedEvent. `withTrace: false` skips the headers entirely when the body
 * carries the revision (every event appended since the body did): whole-log reads don't need the
 * trace context and header decoding costs about twice the JSON parse (measured).
 */
export function decode(m: { data: Uint8Array; seq: number; headers?: MsgHdrs }, withTrace = true, seq?: number): RecordedEvent {
  // Filled in place (no spread): this runs once per event on every read and replay.
  const event = JSON.parse(Buffer.from(m.data.buffer, m.data.byteOffset, m.data.byteLength).toString('utf8')) as RecordedEvent;
  event.position = BigInt(seq ?? m.seq);
  if (typeof event.revision !== 'number') event.revision = Number(m.headers?.get(REVISION_HEADER));
  if (withTrace) {
    const traceparent = m.headers?.get('traceparent');
    if (traceparent) event.traceparent = traceparent;
  }
  return event;
}

function isWrongLastSequence(err: unknown): boolean {
  if (err instanceof NatsError && err.api_error?.err_code === WRONG_LAST_SEQUENCE) return true;
  return /wrong last sequence/i.test(messageOf(err));
}

function isNotFound(err: unknown): boolean {
  if (err instanceof NatsError && (err.code === '404' || err.api_error?.code === 404)) return true;
  return /not found|no message found/i.test(messageOf(err));
}
