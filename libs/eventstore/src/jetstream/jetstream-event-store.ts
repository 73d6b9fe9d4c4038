import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { isDeepStrictEqual } from 'node:util';
import {
  AckPolicy,
  ConsumerEvents,
  DeliverPolicy,
  Events,
  nuid,
  type Consumer,
  headers as natsHeaders,
  nanos,
  DiscardPolicy,
  NatsError,
  RetentionPolicy,
  StorageType,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
  type NatsConnection,
  type ConsumerMessages,
  type StoredMsg,
} from 'nats';

import { LRUCache, messageOf, RetriesExhaustedError, retry } from '@mesh/common';
import {
  EVENTS_PREFIX,
  EVENTS_STREAM,
  eventOf,
  MessageQuarantined,
  subjectForStream,
  type EventSubjects,
  type NewEvent,
  type RecordedEvent,
} from '@mesh/contracts';
import { ended, producerSpan } from '@mesh/runtime/trace';
import { ConcurrencyError, DuplicateEventError, EventStoreInvariantError } from '../errors';
import { encodeEnvelope, prepareEnvelopes, type StoredEnvelope } from '../envelope';
import { decodeMessage, PoisonMessage, QUARANTINE_STREAM_PREFIX, REVISION_HEADER, streamOfSubject } from '../poison';
import { detectPartitions } from './partitions';
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

/** The manager nats.js returns has the direct-get API; its public interface just doesn't list it. */
type Manager = JetStreamManager & { direct: { getMessage(stream: string, query: { seq?: number; last_by_subj?: string }): Promise<StoredMsg> } };

export { decode, REVISION_HEADER } from '../poison';
export const TYPE_HEADER = 'Mesh-Type';
/** JSStreamWrongLastSequenceErrF: the expected-last-subject-sequence check failed. */
const WRONG_LAST_SEQUENCE = 10071;
/** Bounded attempts of one append racing other writers (`any` appends; a lost expected version fails at the first re-check). */
const APPEND_ATTEMPTS_MAX = 51;
/** Known stream tails; bounded so a writer touching millions of streams doesn't grow without limit. */
const TAIL_CACHE_MAX = 50_000;
/** A fetch normally completes as soon as its messages arrive; this only bounds a stalled one. */
const FETCH_EXPIRES_MS = 10_000;
/** A reader's server sends a heartbeat this often while it has nothing to send; two missed and the reader is replaced. */
const READ_HEARTBEAT_MS = 2_000;
/** The server removes a reader unused this long (one left by a crashed process, or by a read that moved to a new reader). */
const READER_INACTIVE_MS = 60_000;
/** A subscription's reader sends a heartbeat this often while idle; two missed and it is replaced. */
const SUBSCRIBE_HEARTBEAT_MS = 2_000;
/** Readers tried in a row without getting a message before a read fails (each on a new consumer). */
const READ_ATTEMPTS_MAX = 8;
/** Attempts of an operation JetStream could not answer (TIMEOUT, 503, offline): 100 ms doubling to 2 s covers an election (~5 s measured). */
const UNAVAILABLE_ATTEMPTS_MAX = 10;
const UNAVAILABLE_DELAY_MS = 100;
const UNAVAILABLE_DELAY_MAX_MS = 2_000;
/** Quarantine records this process knows are written (so it tries each at most once); older ones are found in the log again. */
const RECORDED_QUARANTINE_MAX = 10_000;
/** Quarantine records written at once (a page full of garbage is recorded in parallel, bounded). */
const QUARANTINE_CONCURRENCY = 16;
/** Quarantine records waiting to be written; beyond it a poison message is left for a later read to record. */
const QUARANTINE_QUEUE_MAX = 10_000;
/** Poison warnings printed in full before they are only counted. */
const POISON_WARNINGS_IN_FULL = 100;
const QUARANTINE_SUBJECT_PREFIX = subjectForStream(`${QUARANTINE_STREAM_PREFIX}0`).slice(0, -1);

export interface JetStreamEventStoreOptions {
  streamName?: string;
  /** Replicas of the event stream: 1 locally, 3 in a NATS cluster. */
  replicas?: number;
  /** JetStream dedup window for Nats-Msg-Id; beyond it, idempotency comes from the revision check. */
  duplicateWindowMs?: number;
  /** Where the store reports what it quarantined or could not record (default: console.warn). */
  warn?: (line: string) => void;
  /** The log's layout; default: asked of the server (detectPartitions, docs/cluster.md "Partitions"). */
  subjects?: EventSubjects;
}

/** What one ordered-consumer fetch brought: the events, the poison among them, the last sequence seen. */
interface Fetched {
  events: RecordedEvent[];
  poison: PoisonMessage[];
  lastSeq: number;
}

/** The whole log's bounds and its deleted sequences (sorted), to tell an explained gap from a damaged log. */
interface LogState {
  first: number;
  last: number;
  deleted: number[];
}

/** The log had a gap its deleted list did not explain; thrown once to read again with a fresh list. */
class StaleLogState extends Error {}

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
  private readonly recorded = new LRUCache<number, true>({ max: RECORDED_QUARANTINE_MAX });
  private readonly reader = `${hostname()}/${process.pid}`;
  /** Names of this store's reader consumers: a prefix unique to the instance, then a counter. */
  private readonly readerPrefix = `r${nuid.next()}_`;
  private readers = 0;
  /** Subscriptions to tell when the connection reconnects (to another server: their readers may be gone). */
  private readonly reconnectListeners = new Set<() => void>();
  private reported = 0;
  private readonly queued = new Map<number, { poison: PoisonMessage; reader: string }>();
  private recording?: Promise<void>;

  private constructor(
    private readonly nc: NatsConnection,
    private readonly js: JetStreamClient,
    private readonly jsm: Manager,
    private readonly stream: string,
    private readonly warn: (line: string) => void,
    /** The log's layout: where a stream's and a category's messages are stored. */
    readonly subjects: EventSubjects,
  ) {
    void (async () => {
      for await (const status of nc.status()) if (status.type === Events.Reconnect) for (const listener of this.reconnectListeners) listener();
    })().catch(() => undefined); // ends with the connection
  }

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
    const subjects = options.subjects ?? (await detectPartitions(nc));
    return new JetStreamEventStore(nc, nc.jetstream(), jsm as Manager, stream, options.warn ?? ((line) => console.warn(line)), subjects);
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
    let tail = this.cachedTail(subject, expected) ?? (await this.readTail(stream, subject));
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
          tail = await this.readTail(stream, subject);
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
    // An append whose answer was lost (the leader died after writing it, or the election outlasted
    // the request) is sent again as it was: same Nats-Msg-Id, same expected last sequence. JetStream
    // checks the id first, so one that did land comes back as a duplicate of itself (below).
    // The first attempt outside the retry helper: the hot path stays one publish.
    const publish = () => this.js.publish(subject, payload, { headers: h });
    const ack = await ended(span, () =>
      publish().catch((err: unknown) => {
        if (!isUnavailable(err)) throw err;
        return retryUnavailable(`append to ${subject}`, publish);
      }),
    );
    if (!ack.duplicate) return { revision, seq: ack.seq };
    // Within the dedup window JetStream answers a retry with the original sequence: make sure the
    // original is this very event on this stream, and continue from where it really sits. Asked of
    // the leader (not a direct get, which any replica answers): a replica may not hold it yet.
    const original = await retryUnavailable('read the original of a duplicate', () => this.jsm.streams.getMessage(this.stream, { seq: ack.seq }));
    const originalStream = streamOfSubject(original.subject);
    if (originalStream !== envelope.stream) {
      throw new DuplicateEventError(envelope.id, `already appended to ${typeof originalStream === 'string' ? originalStream : original.subject}`);
    }
    // Its id may also have been taken by a message that is no event (poison published with that
    // Nats-Msg-Id): its revision is then unknown, never "0" from a missing header.
    const decoded = decodeMessage({ data: original.data, seq: original.seq, subject: original.subject, headers: original.header }, false);
    if (decoded instanceof PoisonMessage || decoded.id !== envelope.id) {
      throw new DuplicateEventError(envelope.id, `the id is taken at position ${original.seq} by a message that is not this event`);
    }
    // The same id with other data: another writer decided the same event from the same state (two
    // scheduler replicas that both believe they lead). Ours was not written: a conflict, exactly as
    // the revision check reports it once the dedup window has passed (ids are deterministic).
    if (!isDeepStrictEqual(decoded.data, JSON.parse(JSON.stringify(envelope.data)))) {
      throw new ConcurrencyError(envelope.stream, tail.revision, decoded.revision);
    }
    return { revision: decoded.revision, seq: ack.seq };
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

  /**
   * The stream's last event (revision) and the subject's last message (sequence: what the next
   * append is conditioned on). One direct get when the last message is an event as this store
   * writes it (body revision == Mesh-Revision header); otherwise (poison, a forged or header-less
   * message) the whole stream is read and the tail is its last valid event: a stray message is
   * never read as "revision 0", which would make the next load see a reset stream.
   */
  private async readTail(stream: string, subject: string): Promise<Tail> {
    let last: StoredMsg;
    try {
      last = await retryUnavailable(`last of ${subject}`, () => this.jsm.direct.getMessage(this.stream, { last_by_subj: this.subjects.streamFilter(stream) }));
    } catch (err) {
      if (isNotFound(err)) return { revision: -1, seq: 0 };
      throw err;
    }
    const decoded = decodeMessage({ data: last.data, seq: last.seq, subject: last.subject, headers: last.header }, false);
    if (!(decoded instanceof PoisonMessage) && last.header?.get(REVISION_HEADER) === String(decoded.revision))
      return { revision: decoded.revision, seq: last.seq };
    const { events, lastSeq } = await this.readStream(stream, 'append', {});
    return { revision: events.length > 0 ? events[events.length - 1].revision : -1, seq: lastSeq };
  }

  async read(stream: string, fromRevision = 0): Promise<RecordedEvent[]> {
    const { events } = await this.readStream(stream, 'read', {});
    return fromRevision > 0 ? events.filter((e) => e.revision >= fromRevision) : events;
  }

  /**
   * Every message of the stream's subject (the count comes from the server, so the fetch ends with
   * the last one), poison skipped and quarantined, revisions checked: increasing (a message that
   * does not follow its predecessor's revision is quarantined too: only a forged copy can do that),
   * gaps only where deleted or quarantined messages explain them. The tail seen is remembered for
   * the next append (a handler reads, then appends at the last revision).
   */
  private async readStream(stream: string, reader: string, poisonOptions: PoisonOptions): Promise<{ events: RecordedEvent[]; lastSeq: number }> {
    const subject = subjectForStream(stream);
    // Partitioned, the filter has a wildcard for the partition: one stored subject matches it.
    const filter = this.subjects.streamFilter(stream);
    const info = await retryUnavailable(`count of ${subject}`, () => this.jsm.streams.info(this.stream, { subjects_filter: filter }));
    const count = Object.values(info.state.subjects ?? {}).reduce((sum, n) => sum + n, 0);
    if (count === 0) return { events: [], lastSeq: 0 };
    const fetched = await this.fetchRange(filter, 1, count, true);
    const events: RecordedEvent[] = [];
    const poison = fetched.poison;
    for (const event of fetched.events) {
      const previous = events.length > 0 ? events[events.length - 1].revision : -1;
      if (event.revision > previous) events.push(event);
      else poison.push(new PoisonMessage(Number(event.position), subject, `revision ${event.revision} of ${stream} does not follow revision ${previous}`));
    }
    // Records from inside a record's own append would recurse: poison on a quarantine stream is only reported.
    const record = poisonOptions.quarantine !== 'report' && !stream.startsWith(QUARANTINE_STREAM_PREFIX);
    this.handlePoison(poison, reader, { ...poisonOptions, quarantine: record ? 'record' : 'report' });
    await this.assertExplainedGaps(stream, events, poison);
    if (events.length > 0) this.remember(subject, { revision: events[events.length - 1].revision, seq: fetched.lastSeq });
    return { events, lastSeq: fetched.lastSeq };
  }

  /**
   * Throws EventStoreInvariantError when the revisions of `events` (one stream, increasing) skip
   * more revisions between two events than there are quarantined messages of the stream and deleted
   * log sequences between them: a gap nothing explains means a damaged log or a writer that bypassed
   * the store. The deleted sequences are asked for only when a gap needs them.
   */
  private async assertExplainedGaps(stream: string, events: readonly RecordedEvent[], poison: readonly PoisonMessage[]): Promise<void> {
    let state: LogState | undefined;
    let expected = 0;
    let after = 0;
    for (const event of events) {
      const position = Number(event.position);
      if (event.revision > expected) {
        const missing = event.revision - expected;
        let explained = poison.filter((p) => p.seq > after && p.seq < position).length;
        if (explained < missing) {
          state ??= await this.logState();
          explained += countDeleted(state, after, position);
        }
        if (explained < missing) {
          throw new EventStoreInvariantError(
            `stream ${stream}: revision ${expected} expected, found ${event.revision} at position ${position}; ${missing} revision(s) missing but only ${explained} deleted or quarantined message(s) lie between (an unexplained gap)`,
            stream,
            expected,
          );
        }
      }
      expected = event.revision + 1;
      after = position;
    }
  }

  async readAll(options: ReadAllOptions): Promise<RecordedEvent[]> {
    const limit = Math.min(options.limit ?? READ_BATCH_MAX, READ_BATCH_MAX);
    if (limit <= 0) return [];
    try {
      return await this.readAllOnce(options, limit, false);
    } catch (err) {
      // A message deleted while it was being read: read once more with the fresh list of deleted sequences.
      if (!(err instanceof StaleLogState)) throw err;
      return this.readAllOnce(options, limit, true);
    }
  }

  private async readAllOnce(options: ReadAllOptions, limit: number, lastChance: boolean): Promise<RecordedEvent[]> {
    const state = await this.logState();
    let from = Math.max(Number(options.from < 1n ? 1n : options.from), state.first);
    const events: RecordedEvent[] = [];
    // Poison and deleted messages are skipped, so a page is refilled until it holds `limit` events or reaches the head.
    while (events.length < limit && from <= state.last) {
      const { count, end } = presentRange(state, from, limit - events.length);
      if (count > 0) {
        const fetched = await this.fetchRange(undefined, from, count, false, state, lastChance);
        this.handlePoison(fetched.poison, 'readAll', options);
        if (events.length === 0 && fetched.events.length >= limit) return fetched.events; // the usual page: one fetch, no copy
        for (const event of fetched.events) events.push(event);
      }
      from = end + 1;
    }
    return events;
  }

  /**
   * The last sequence that still holds a message: JetStream keeps `last_seq` when the last message
   * is deleted, and a reader waiting to reach the head (the scheduler's catch-up) would never get there.
   */
  async headPosition(): Promise<bigint> {
    const { state } = await retryUnavailable('stream state', () => this.jsm.streams.info(this.stream));
    if (state.num_deleted === 0) return BigInt(state.last_seq);
    const log = await this.logState();
    let head = log.last;
    for (let d = log.deleted.length - 1; d >= 0 && log.deleted[d] >= head && head >= log.first; d--) if (log.deleted[d] === head) head--;
    return BigInt(Math.max(head, 0));
  }

  /** The log's first and last sequence and its deleted sequences, sorted (one request: with no deletions the details cost nothing). */
  private async logState(): Promise<LogState> {
    const { state } = await retryUnavailable('stream state', () => this.jsm.streams.info(this.stream, { deleted_details: true }));
    const deleted = state.num_deleted > 0 ? [...(state.deleted ?? [])].sort((a, b) => a - b) : [];
    return { first: state.first_seq, last: state.last_seq, deleted };
  }

  /**
   * Fetches exactly `count` messages of `filter` (undefined = the whole log) from `fromSeq` with an
   * ordered consumer. A fetch of a known count ends as soon as the last one arrives; breaking out of
   * a consume() early instead waits for its pull to wind down (measured ~0.7 s per call). The
   * whole-log read passes no filter at all: nats-server 2.9 takes up to seconds to create a consumer
   * filtered on `mesh.events.>` that starts mid-stream, and none without a filter (measured).
   */
  private async fetchRange(
    filter: string | undefined,
    fromSeq: number,
    count: number,
    withTrace: boolean,
    log?: LogState,
    lastChance = true,
  ): Promise<Fetched> {
    const fetched: Fetched = { events: [], poison: [], lastSeq: 0 };
    if (count <= 0) return fetched;
    // Whole log: the position of each message is known without parsing its reply subject (a third
    // of the cost of a replay, measured): the next sequence not deleted. Checked per batch below.
    const deleted = log?.deleted ?? [];
    let d = lowerBound(deleted, fromSeq);
    let seq = fromSeq;
    let received = 0;
    let next = fromSeq; // the stream sequence the next reader starts at
    let consumer: Consumer | undefined;
    for (let attempt = 1; received < count;) {
      let lost = false; // the reader's server stopped answering: read the rest again on a new reader
      try {
        consumer ??= await this.openReader(filter, next);
        const batch = Math.min(count - received, READ_BATCH_MAX);
        const before = received;
        const messages = await consumer.fetch({ max_messages: batch, expires: FETCH_EXPIRES_MS, idle_heartbeat: READ_HEARTBEAT_MS });
        void watchHeartbeats(messages, () => (lost = true));
        let last: JsMsg | undefined;
        for await (const m of messages) {
          let decoded: RecordedEvent | PoisonMessage;
          if (filter) {
            decoded = decodeMessage(m, withTrace);
          } else {
            while (d < deleted.length && deleted[d] <= seq) if (deleted[d++] === seq) seq++;
            decoded = decodeMessage(m, withTrace, seq++);
          }
          if (decoded instanceof PoisonMessage) fetched.poison.push(decoded);
          else fetched.events.push(decoded);
          received++;
          last = m;
        }
        if (last) {
          fetched.lastSeq = last.seq;
          next = last.seq + 1;
          if (!filter && last.seq !== seq - 1) {
            if (!lastChance) throw new StaleLogState();
            throw new EventStoreInvariantError(
              `event store read: seq ${last.seq} arrived where ${seq - 1} was due (read from ${fromSeq}): a gap in ${this.stream} that no deleted message explains`,
            );
          }
        }
        if (received === before) {
          // Whole log: a message deleted after the deleted list was read leaves the fetch short; read the list again once.
          if (!filter && !lastChance && !lost) throw new StaleLogState();
          // Otherwise the reader stopped delivering (its server died or was cut off): a new reader, bounded.
          if (attempt >= READ_ATTEMPTS_MAX) {
            throw new EventStoreInvariantError(`event store read stalled at ${filter ?? 'the log'} seq >= ${next}: expected ${count} messages, got ${before}`);
          }
        } else if (!lost) {
          continue;
        } else {
          attempt = 1; // progress: only readers that deliver nothing count against the bound
        }
      } catch (err) {
        if (!isUnavailable(err) || attempt >= READ_ATTEMPTS_MAX) throw err;
      }
      // The reader is gone (its server died, or it was placed on a server that is down while the
      // cluster has not noticed yet): a new one, under a new name, is placed again by the meta leader.
      consumer = undefined;
      await sleep(unavailableDelayMs(attempt++));
    }
    return fetched;
  }

  /**
   * A reader: an ephemeral, unreplicated pull consumer from `fromSeq` (what nats.js's ordered
   * consumer creates too), under a fresh name each time. nats.js's ordered consumer retries the
   * creation under the same name for ever, and a name the meta leader has placed on a dead server
   * never answers (measured: reads hung for minutes after a SIGKILL), so a failed creation is
   * retried by the caller with a new reader.
   */
  private async openReader(filter: string | undefined, fromSeq: number): Promise<Consumer> {
    const info = await this.jsm.consumers.add(this.stream, {
      name: `${this.readerPrefix}${++this.readers}`,
      deliver_policy: DeliverPolicy.StartSequence,
      opt_start_seq: fromSeq,
      ack_policy: AckPolicy.None,
      max_deliver: 1,
      mem_storage: true,
      num_replicas: 1,
      inactive_threshold: nanos(READER_INACTIVE_MS),
      ...(filter ? { filter_subject: filter } : {}),
    });
    return this.js.consumers.getPullConsumerFor(info);
  }

  /**
   * Tells `onPoison` of each poison message, then queues its quarantine record (unless only
   * reporting). Recording runs in the background, a few at a time: a read is never slowed down by
   * the garbage it skips, and a flood of it is bounded by the queue (what does not fit is recorded by
   * a later read that meets it). `flushQuarantine()` waits for the queue.
   */
  private handlePoison(poison: readonly PoisonMessage[], reader: string, options: PoisonOptions): void {
    for (const p of poison) {
      options.onPoison?.(p);
      if (options.quarantine === 'report' || this.recorded.has(p.seq) || this.queued.has(p.seq)) continue;
      if (this.queued.size >= QUARANTINE_QUEUE_MAX) {
        this.report(`skipped ${p.toString()}; not recorded now (${QUARANTINE_QUEUE_MAX} records already queued), a later read records it`);
        continue;
      }
      this.queued.set(p.seq, { poison: p, reader });
    }
    if (this.queued.size > 0) this.recording ??= this.drainQuarantine().finally(() => (this.recording = undefined));
  }

  private async drainQuarantine(): Promise<void> {
    while (this.queued.size > 0) {
      const batch = [...this.queued.values()].slice(0, QUARANTINE_CONCURRENCY);
      await Promise.all(batch.map(({ poison, reader }) => this.recordQuarantine(poison, reader)));
      for (const { poison } of batch) this.queued.delete(poison.seq);
    }
  }

  /** Resolves when every quarantine record queued so far has been written (or has failed and been reported). */
  async flushQuarantine(): Promise<void> {
    while (this.recording) await this.recording;
  }

  /**
   * Writes MessageQuarantined once per poison message: its own stream `deadletter-quarantine-<seq>`
   * appended with 'no_stream' and an id derived from the sequence, so every later attempt (this
   * reader, another service, a restart years later, beyond JetStream's dedup window) finds the same
   * event already there and succeeds without writing; a record already there is found with one
   * direct get. A failure is reported and the message still skipped: the next read that meets it
   * records it.
   */
  private async recordQuarantine(poison: PoisonMessage, reader: string): Promise<void> {
    if (this.recorded.has(poison.seq)) return;
    if (poison.subject.startsWith(QUARANTINE_SUBJECT_PREFIX)) {
      this.report(`skipped ${poison.toString()} (poison on a quarantine stream is not recorded again)`);
      this.recorded.set(poison.seq, true);
      return;
    }
    try {
      const tail = await this.readTail(poison.quarantineStream, subjectForStream(poison.quarantineStream));
      if (tail.revision < 0) {
        const data = {
          subject: poison.subject.slice(0, 512),
          streamSequence: String(poison.seq),
          reason: poison.reason,
          reader: `${reader} ${this.reader}`.slice(0, 128),
        };
        await this.append(poison.quarantineStream, [eventOf(MessageQuarantined, `quarantine-${poison.seq}`, data)], 'no_stream');
        this.report(`quarantined ${poison.toString()} (record in ${poison.quarantineStream})`);
      }
      this.recorded.set(poison.seq, true);
    } catch (err) {
      this.report(`skipped ${poison.toString()}; recording it failed (the next read that meets it retries): ${messageOf(err)}`);
    }
  }

  /** Warnings about poison, bounded: the first few in full, then one line per thousand (a flood of garbage must not flood the log too). */
  private report(line: string): void {
    this.reported++;
    if (this.reported <= POISON_WARNINGS_IN_FULL) this.warn(`event store: ${line}`);
    else if (this.reported % 1000 === 0) this.warn(`event store: ${this.reported} poison messages reported so far; latest: ${line}`);
  }

  subscribe(options: SubscriptionOptions, handler: EventHandler): Subscription {
    const only = options.categories && options.categories.length === 1 ? options.categories[0] : undefined;
    // No filter for the whole log (see fetchRange); a category filter for one category.
    const filter = only ? this.subjects.categoryFilter(only) : undefined;
    const wanted = options.categories && !only ? new Set(options.categories) : undefined;
    let position = options.after;
    let messages: ConsumerMessages | undefined;
    let stopped = false;
    // One reader after another: each from the position reached. A reader is replaced when its
    // server stops sending (two heartbeats missed), when this connection moved to another server
    // (the reader may have been on the dead one, and nats.js then retries it for ever), or when a
    // delivery is missing (ack-less readers deliver each message once; a gap is read again).
    const run = async () => {
      for (let attempt = 1; !stopped;) {
        let lost = false;
        const onReconnect = () => {
          lost = true;
          messages?.stop();
        };
        this.reconnectListeners.add(onReconnect);
        try {
          const consumer = await this.openReader(filter, Number(position) + 1);
          if (stopped) return;
          messages = await consumer.consume({ max_messages: 512, idle_heartbeat: SUBSCRIBE_HEARTBEAT_MS });
          void watchHeartbeats(messages, () => (lost = true));
          let delivered = 0;
          for await (const m of messages) {
            if (m.info.deliverySequence !== ++delivered) {
              lost = true;
              break;
            }
            attempt = 1;
            const decoded = decodeMessage(m);
            if (decoded instanceof PoisonMessage) {
              this.handlePoison([decoded], 'subscribe', options);
              position = BigInt(decoded.seq);
            } else {
              if (!wanted || wanted.has(decoded.stream.slice(0, decoded.stream.indexOf('-')))) await handler(decoded);
              position = decoded.position;
            }
            if (stopped) break;
          }
          if (stopped || this.nc.isClosed()) return;
          if (!lost) throw new Error(`event store subscription ended at position ${position}`);
        } catch (err) {
          if (stopped || this.nc.isClosed()) return;
          if (!isUnavailable(err) || attempt >= UNAVAILABLE_ATTEMPTS_MAX) throw err;
        } finally {
          this.reconnectListeners.delete(onReconnect);
          messages?.stop();
        }
        await sleep(unavailableDelayMs(attempt++));
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
    await this.flushQuarantine();
    this.tails.clear();
  }

  /** For tests and benchmarks: the connection this store publishes on. */
  get connection(): NatsConnection {
    return this.nc;
  }
}

/** Index of the first element of `sorted` that is >= value. */
function lowerBound(sorted: readonly number[], value: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid] < value) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Deleted (or discarded: before the first) sequences strictly between `after` and `before`. */
function countDeleted(state: LogState, after: number, before: number): number {
  const discarded = Math.max(0, Math.min(state.first, before) - after - 1);
  return discarded + lowerBound(state.deleted, before) - lowerBound(state.deleted, Math.max(after + 1, state.first));
}

/** From `from`, the sequences to fetch to get `want` messages that exist (not deleted), up to the log's last: their count and the last sequence covered. */
function presentRange(state: LogState, from: number, want: number): { count: number; end: number } {
  let d = lowerBound(state.deleted, from);
  let end = from - 1;
  let count = 0;
  while (count < want && end < state.last) {
    const nextDeleted = d < state.deleted.length ? state.deleted[d] : Infinity;
    const runEnd = Math.min(nextDeleted - 1, state.last, end + (want - count));
    if (runEnd > end) {
      count += runEnd - end;
      end = runEnd;
    }
    if (count < want && end + 1 === nextDeleted) {
      end = nextDeleted;
      d++;
    }
  }
  return { count, end };
}

/**
 * JetStream could not answer now but may in a moment: a request not answered (TIMEOUT), no
 * responders (503), the stream or a consumer without a leader or on a server that is down. What a
 * writer or reader sees while the cluster elects a new leader after a server's death.
 */
export function isUnavailable(err: unknown): boolean {
  if (err instanceof NatsError) {
    if (err.code === 'TIMEOUT' || err.code === '503' || err.api_error?.code === 503) return true;
  }
  return /timeout|no responders|temporarily unavailable|is offline|no suitable peers|not current/i.test(messageOf(err));
}

/** Wait before attempt `attempt + 1` of an operation JetStream could not answer: 100 ms doubling to 2 s. */
function unavailableDelayMs(attempt: number): number {
  return Math.min(UNAVAILABLE_DELAY_MS * 2 ** Math.min(attempt - 1, 10), UNAVAILABLE_DELAY_MAX_MS);
}

/**
 * Runs an idempotent JetStream operation, again after a pause when JetStream was unavailable
 * (bounded: UNAVAILABLE_ATTEMPTS_MAX, about the length of an election); any other failure at once.
 */
function retryUnavailable<T>(what: string, fn: () => Promise<T>): Promise<T> {
  return retry(what, fn, {
    attempts: UNAVAILABLE_ATTEMPTS_MAX,
    baseDelayMs: UNAVAILABLE_DELAY_MS,
    maxDelayMs: UNAVAILABLE_DELAY_MAX_MS,
    retryable: isUnavailable,
  }).catch((err: unknown) => {
    // Callers tell failures by their type (a TIMEOUT stays a NatsError): the last one, not a wrapper.
    throw err instanceof RetriesExhaustedError ? err.cause : err;
  });
}

/** Ends a fetch whose server has stopped sending (two heartbeats missed) and says so. */
async function watchHeartbeats(messages: ConsumerMessages, onLost: () => void): Promise<void> {
  for await (const status of await messages.status()) {
    if (status.type === ConsumerEvents.HeartbeatsMissed) {
      onLost();
      messages.stop();
      return;
    }
  }
}

function isWrongLastSequence(err: unknown): boolean {
  if (err instanceof NatsError && err.api_error?.err_code === WRONG_LAST_SEQUENCE) return true;
  return /wrong last sequence/i.test(messageOf(err));
}

function isNotFound(err: unknown): boolean {
  if (err instanceof NatsError && (err.code === '404' || err.api_error?.code === 404)) return true;
  return /not found|no message found/i.test(messageOf(err));
}
