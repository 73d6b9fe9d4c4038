import { ContractError, ENVELOPE_MAX_BYTES, ID_PATTERN, parseStreamName, type NewEvent, type RecordedEvent } from '@mesh/contracts';

/** Upper bound on events in one append: bounds a commit's size and its retry. */
export const APPEND_BATCH_MAX = 100;

export type StoredEnvelope = Omit<RecordedEvent, 'revision' | 'position'>;

/** Completes and checks the envelope of each new event before anything is written. */
export function prepareEnvelopes(stream: string, events: NewEvent[], now = new Date()): StoredEnvelope[] {
  parseStreamName(stream);
  if (!Array.isArray(events) || events.length === 0) throw ContractError.single('append', 'events', 'must hold at least one event');
  if (events.length > APPEND_BATCH_MAX) throw ContractError.single('append', 'events', `must hold at most ${APPEND_BATCH_MAX} events`);
  const seen = new Set<string>();
  return events.map((event, index) => {
    if (seen.has(event.id)) throw ContractError.single('append', `events.${index}.id`, 'must be unique within one append');
    seen.add(event.id);
    const envelope: StoredEnvelope = {
      id: event.id,
      type: event.type,
      stream,
      occurredAt: event.occurredAt ?? now.toISOString(),
      schemaVersion: event.schemaVersion ?? 1,
      correlationId: event.correlationId ?? event.id,
      causationId: event.causationId ?? event.id,
      data: event.data,
    };
    checkEnvelope(envelope, index);
    return envelope;
  });
}

const TYPE_PATTERN = /^[A-Z][A-Za-z0-9]{0,63}$/;
const ISO_UTC = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$/;

/**
 * The rules of envelopeSchema, hand-written because this runs on every append and every read (the
 * zod schema stays the documented contract and is what subscribers get as JSON Schema).
 */
function checkEnvelope(e: StoredEnvelope, index: number): void {
  const problem = envelopeProblem(e);
  if (problem) throw ContractError.single(`events.${index}`, problem.field, problem.rule);
}

/** The first envelope field of `e` that breaks its rule, or undefined when the envelope is well-formed (`stream` is checked by the caller). */
export function envelopeProblem(e: Readonly<Record<string, unknown>>): { field: string; rule: string } | undefined {
  if (typeof e.id !== 'string' || !ID_PATTERN.test(e.id)) return { field: 'id', rule: 'must match [A-Za-z0-9_-]{1,128}' };
  if (typeof e.type !== 'string' || !TYPE_PATTERN.test(e.type)) return { field: 'type', rule: 'must be PascalCase, at most 64 characters' };
  if (typeof e.occurredAt !== 'string' || !ISO_UTC.test(e.occurredAt)) return { field: 'occurredAt', rule: 'must be an ISO-8601 UTC timestamp' };
  if (typeof e.schemaVersion !== 'number' || !Number.isInteger(e.schemaVersion) || e.schemaVersion < 1 || e.schemaVersion > 1000) {
    return { field: 'schemaVersion', rule: 'must be an integer from 1 to 1000' };
  }
  if (typeof e.correlationId !== 'string' || !ID_PATTERN.test(e.correlationId)) return { field: 'correlationId', rule: 'must match [A-Za-z0-9_-]{1,128}' };
  if (typeof e.causationId !== 'string' || !ID_PATTERN.test(e.causationId)) return { field: 'causationId', rule: 'must match [A-Za-z0-9_-]{1,128}' };
  if (e.data === undefined) return { field: 'data', rule: 'is required' };
  return undefined;
}

/** The envelope as JSON, refused when larger than one event may be (larger payloads go to the object store). */
export function encodeEnvelope(envelope: StoredEnvelope): string {
  const json = JSON.stringify(envelope);
  const bytes = Buffer.byteLength(json);
  if (bytes > ENVELOPE_MAX_BYTES) {
    throw ContractError.single('append', 'data', `event ${envelope.id} is ${bytes} bytes; the limit is ${ENVELOPE_MAX_BYTES}`);
  }
  return json;
}
