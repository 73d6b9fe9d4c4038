import { catalog, CATEGORY_OWNERS, EVENTS_PREFIX, PARTITION_TOKEN_PATTERN, passesSchema, type EventDefinition, type RecordedEvent } from '@mesh/contracts';
import type { MsgHdrs } from 'nats';
import { envelopeProblem } from './envelope';

/** The header every event carries its 0-based revision in (the body carries it too, as `revision`). */
export const REVISION_HEADER = 'Mesh-Revision';
/** Longest reason kept for one poison message (the quarantine record's limit). */
export const POISON_REASON_MAX = 1024;
/** Stream sequences of quarantine records: one stream per quarantined message, so recording it twice is a no-op. */
export const QUARANTINE_STREAM_PREFIX = 'deadletter-quarantine-';

/**
 * A message on an event subject that is no valid event: not JSON, not an envelope, an unknown type,
 * data breaking its schema, a body naming another stream than its subject, no valid revision.
 * Readers skip it; the store records it once (MessageQuarantined) or, for readers that must not
 * write, reports it (ReadAllOptions.onPoison).
 */
export class PoisonMessage {
  /** Why it is poison, at most POISON_REASON_MAX characters (what the quarantine record holds). */
  readonly reason: string;

  constructor(
    /** Stream sequence (log position) of the message. */
    readonly seq: number,
    readonly subject: string,
    reason: string,
  ) {
    this.reason = clip(reason, POISON_REASON_MAX);
  }

  /** The stream its quarantine record is written to. */
  get quarantineStream(): string {
    return `${QUARANTINE_STREAM_PREFIX}${this.seq}`;
  }

  toString(): string {
    return `poison at position ${this.seq} on ${this.subject}: ${this.reason}`;
  }
}

/** Thrown by `decode` (the throwing form, for callers that dead-letter what throws, e.g. the transport). */
export class PoisonMessageError extends Error {
  readonly code = 'poison_message';
  constructor(readonly poison: PoisonMessage) {
    super(poison.toString());
    this.name = 'PoisonMessageError';
  }
}

/** What a reader needs of a stored message; a nats.js JsMsg or StoredMsg is one. */
export interface StoredMessage {
  data: Uint8Array;
  seq: number;
  subject: string;
  headers?: MsgHdrs;
}

const SUBJECT_START = `${EVENTS_PREFIX}.`;
/** One regex over the whole subject (no slicing on the hot path): prefix, a known category, an id, a partition when the log has them. */
const EVENT_SUBJECT = new RegExp(
  `^${EVENTS_PREFIX.replace(/\./g, '\\.')}\\.(?:${Object.keys(CATEGORY_OWNERS).join('|')})\\.[A-Za-z0-9_-]{1,128}(?:\\.${PARTITION_TOKEN_PATTERN})?$`,
);

const PARTITION_TOKEN = new RegExp(`^${PARTITION_TOKEN_PATTERN}$`);

/** Where the id ends: at the partition token of a partitioned log (subjects.ts EventSubjects), else at the end. */
function idEnd(subject: string, dot: number): number {
  const end = subject.indexOf('.', dot + 1);
  return end < 0 ? subject.length : end;
}

/**
 * The stream a subject belongs to (`mesh.events.wallet.alice`, or `mesh.events.wallet.alice.3` in a
 * partitioned log -> `wallet-alice`), or why it is none.
 * The stream is always taken from the subject, never from the body: the subject is what the
 * store's filters, the per-subject concurrency check and the per-subject reads go by.
 */
export function streamOfSubject(subject: string): string | { reason: string } {
  if (EVENT_SUBJECT.test(subject)) {
    const dot = subject.indexOf('.', SUBJECT_START.length);
    return `${subject.slice(SUBJECT_START.length, dot)}-${subject.slice(dot + 1, idEnd(subject, dot))}`;
  }
  if (!subject.startsWith(SUBJECT_START)) return { reason: `subject ${subject} is not under ${EVENTS_PREFIX}` };
  const parts = subject.slice(SUBJECT_START.length).split('.');
  if (parts.length !== 2 && parts.length !== 3) return { reason: `subject ${subject} is not ${EVENTS_PREFIX}.<category>.<id>[.<partition>]` };
  if (parts.length === 3 && !PARTITION_TOKEN.test(parts[2])) {
    return { reason: `subject ${subject} is not ${EVENTS_PREFIX}.<category>.<id>[.<partition>]: the partition part must be 0..99` };
  }
  if (!Object.hasOwn(CATEGORY_OWNERS, parts[0])) return { reason: `subject ${subject}: ${parts[0]} is not a known category` };
  return { reason: `subject ${subject}: the id part must match [A-Za-z0-9_-]{1,128}` };
}

/** `stream` is the stream of `subject` (already matched by EVENT_SUBJECT; the id ends at `end`), compared in place: no string is built per message. */
function isStreamOf(stream: unknown, subject: string, dot: number, end: number): boolean {
  if (typeof stream !== 'string' || stream.length !== end - SUBJECT_START.length) return false;
  const dash = dot - SUBJECT_START.length;
  if (stream.charCodeAt(dash) !== 45) return false; // '-'
  for (let i = 0; i < stream.length; i++) if (i !== dash && stream.charCodeAt(i) !== subject.charCodeAt(SUBJECT_START.length + i)) return false;
  return true;
}

/**
 * A stored message as a RecordedEvent, or a PoisonMessage saying what is wrong with it. Checks, in
 * order: the subject names a stream, the body is JSON, it is an envelope (the hand-written rules
 * of envelopeSchema), its `stream` is its subject's, it has a revision (the body's `revision`, else
 * a canonical `Mesh-Revision` header: a message with neither is refused, never read as revision 0),
 * its type is in the catalog for that category, and its data passes the type's schema (the data is
 * returned as stored: the hash chain is over the stored bytes, and the schemas transform nothing).
 *
 * `withTrace: false` skips the headers when the body carries the revision (every event appended
 * since the body did): whole-log reads don't need the trace context, and header decoding costs
 * about twice the JSON parse (measured). `seq` is the position when the caller knows it (parsing
 * a JsMsg's reply subject for it is a third of a replay's cost, measured).
 */
export function decodeMessage(m: StoredMessage, withTrace = true, seq?: number): RecordedEvent | PoisonMessage {
  const position = seq ?? m.seq;
  const subject = m.subject;
  if (!EVENT_SUBJECT.test(subject)) {
    const stream = streamOfSubject(subject);
    return new PoisonMessage(position, subject, typeof stream === 'string' ? `subject ${subject} is no event subject` : stream.reason);
  }
  const dot = subject.indexOf('.', SUBJECT_START.length);
  // The one cast of the decode boundary, as unchecked as JSON.parse's `any`: every field is checked
  // through `body` (unknown) below before `event` (the same object) is returned.
  let event: RecordedEvent;
  try {
    event = JSON.parse(Buffer.from(m.data.buffer, m.data.byteOffset, m.data.byteLength).toString('utf8')) as RecordedEvent;
  } catch (err) {
    return new PoisonMessage(position, subject, `not JSON (${err instanceof Error ? err.message : String(err)})`);
  }
  const body: unknown = event;
  if (!isRecord(body)) {
    return new PoisonMessage(position, subject, `not an envelope: the body is ${body === null ? 'null' : Array.isArray(body) ? 'an array' : typeof body}`);
  }
  const envelope = body;
  const problem = envelopeProblem(envelope);
  if (problem) return new PoisonMessage(position, subject, `not an envelope: ${problem.field} ${problem.rule}`);
  const end = idEnd(subject, dot);
  if (!isStreamOf(envelope.stream, subject, dot, end)) {
    const stream = `${subject.slice(SUBJECT_START.length, dot)}-${subject.slice(dot + 1, end)}`;
    return new PoisonMessage(position, subject, `stream ${clip(String(envelope.stream), 200)} in the body is not the subject's stream ${stream}`);
  }
  let revision = envelope.revision;
  if (revision === undefined) {
    const header = m.headers?.get(REVISION_HEADER);
    revision = header && /^(0|[1-9]\d{0,15})$/.test(header) ? Number(header) : undefined;
  }
  if (typeof revision !== 'number' || !Number.isSafeInteger(revision) || revision < 0) {
    return new PoisonMessage(position, subject, `no valid revision: needs a non-negative integer revision in the body or a ${REVISION_HEADER} header`);
  }
  const type = String(envelope.type); // a string already (envelopeProblem)
  const definition = catalog.get(type);
  if (!definition) return new PoisonMessage(position, subject, `${type} is not a known event type`);
  if (dot - SUBJECT_START.length !== definition.category.length || !subject.startsWith(definition.category, SUBJECT_START.length)) {
    return new PoisonMessage(position, subject, `${type} belongs to category ${definition.category}, not ${subject.slice(SUBJECT_START.length, dot)}`);
  }
  const dataProblem = schemaProblem(definition, envelope.data);
  if (dataProblem) return new PoisonMessage(position, subject, dataProblem);
  // Filled in place (no copy): this runs once per event on every read and replay.
  event.revision = revision;
  event.position = BigInt(position);
  if (withTrace) {
    const traceparent = m.headers?.get('traceparent');
    if (traceparent) event.traceparent = traceparent;
  }
  return event;
}

/**
 * Why an event of `type` with `data` cannot be in `category` (undefined: it can): the type is in
 * the catalog, belongs to that category, and its data passes the type's schema. The part of
 * decodeMessage every adapter's read path shares (JetStream, in memory, KurrentDB), so they all
 * tell poison apart the same way.
 */
export function eventDataProblem(category: string, type: string, data: unknown): string | undefined {
  const definition = catalog.get(type);
  if (!definition) return `${type} is not a known event type`;
  if (definition.category !== category) return `${type} belongs to category ${definition.category}, not ${category}`;
  return schemaProblem(definition, data);
}

/**
 * Why `data` breaks the schema of `definition` (undefined: it passes). Valid data is told apart by
 * the schema's compiled predicate (passesSchema: this runs for every event read); only data it does
 * not pass goes through zod, which decides and names the fields.
 */
function schemaProblem(definition: EventDefinition, data: unknown): string | undefined {
  if (passesSchema(definition.schema, data)) return undefined;
  const parsed = definition.schema.safeParse(data);
  if (parsed.success) return undefined;
  const issues = parsed.error.issues.map((issue) => `${issue.path.map(String).join('.') || '(data)'}: ${issue.message}`).join('; ');
  return `${definition.type} data breaks its schema: ${issues}`;
}

/** The event subject of a stream (`wallet-alice` -> `mesh.events.wallet.alice`), for adapters whose messages have no subject of their own. */
export function subjectOfStream(stream: string): string {
  const dash = stream.indexOf('-');
  return `${SUBJECT_START}${stream.slice(0, dash)}.${stream.slice(dash + 1)}`;
}

/**
 * The throwing form of decodeMessage (same signature as before poison was told apart, for callers
 * that handle a throw, e.g. the transport dead-letters it): throws PoisonMessageError.
 */
export function decode(m: StoredMessage, withTrace = true, seq?: number): RecordedEvent {
  const decoded = decodeMessage(m, withTrace, seq);
  if (decoded instanceof PoisonMessage) throw new PoisonMessageError(decoded);
  return decoded;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function clip(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 3)}...`;
}
