import { randomUUID } from 'node:crypto';
import { ContractError, ENVELOPE_MAX_BYTES, ID_PATTERN, envelopeSchema, parseOrThrow, parseStreamName, type NewEvent, type RecordedEvent } from '@mesh/contracts';

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
    parseOrThrow(envelopeSchema, envelope, `events.${index}`);
    return envelope;
  });
}

export function encodeEnvelope(envelope: StoredEnvelope): Uint8Array {
  const bytes = Buffer.from(JSON.stringify(envelope));
  if (bytes.length > ENVELOPE_MAX_BYTES) {
    throw ContractError.single('append', 'data', `event ${envelope.id} is ${bytes.length} bytes; the limit is ${ENVELOPE_MAX_BYTES}`);
  }
  return bytes;
}

export function newEventId(): string {
  return randomUUID();
}

export function isValidId(id: string): boolean {
  return ID_PATTERN.test(id);
}
