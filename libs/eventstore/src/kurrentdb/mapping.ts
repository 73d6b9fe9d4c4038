import { createHash } from 'node:crypto';
import type { RecordedEvent } from '@mesh/contracts';
import { CATEGORY_OWNERS } from '@mesh/contracts';
import type { StoredEnvelope } from '../envelope';
import { eventDataProblem, PoisonMessage, subjectOfStream } from '../poison';

/**
 * Pure mapping between mesh envelopes and KurrentDB records, unit-tested without a server.
 * KurrentDB event ids must be UUIDs; ours are [A-Za-z0-9_-]{1,128}. A name-based (v5-style, SHA-1)
 * UUID of our id is deterministic, so a retried append carries the same UUID and KurrentDB's own
 * idempotency applies; the original id travels in the metadata.
 */
const NAMESPACE = Buffer.from('6f1c6a2e9a7b4c1e8d3a5b7c9e0f1a2b', 'hex');

export function uuidForEventId(id: string): string {
  const hash = createHash('sha1').update(NAMESPACE).update(id, 'utf8').digest();
  const bytes = Buffer.from(hash.subarray(0, 16));
  bytes[6] = (bytes[6] & 0x0f) | 0x50; // version 5
  bytes[8] = (bytes[8] & 0x3f) | 0x80; // RFC 4122 variant
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

export interface KurrentMetadata {
  meshId: string;
  occurredAt: string;
  schemaVersion: number;
  correlationId: string;
  causationId: string;
  traceparent?: string;
  // KurrentDB's own conventions, so its UI links correlated events.
  $correlationId: string;
  $causationId: string;
}

export interface KurrentEventInput {
  id: string;
  type: string;
  data: unknown;
  metadata: KurrentMetadata;
}

export function toKurrentEvent(envelope: StoredEnvelope, traceparent?: string): KurrentEventInput {
  return {
    id: uuidForEventId(envelope.id),
    type: envelope.type,
    data: envelope.data,
    metadata: {
      meshId: envelope.id,
      occurredAt: envelope.occurredAt,
      schemaVersion: envelope.schemaVersion,
      correlationId: envelope.correlationId,
      causationId: envelope.causationId,
      ...(traceparent ? { traceparent } : {}),
      $correlationId: envelope.correlationId,
      $causationId: envelope.causationId,
    },
  };
}

/** The parts of a KurrentDB resolved event we read (kept structural so tests need no server). */
export interface KurrentRecord {
  streamId: string;
  id: string;
  type: string;
  revision: bigint;
  data: unknown;
  metadata: unknown;
  /** Whether the event was appended as JSON (the client then parses it; a body that is not JSON comes back as the raw string). */
  isJson?: boolean;
  created?: Date | number;
  position?: { commit: bigint; prepare: bigint };
}

export function fromKurrentRecord(record: KurrentRecord): RecordedEvent {
  const meta = (record.metadata ?? {}) as Partial<KurrentMetadata>;
  const id = meta.meshId ?? record.id;
  return {
    id,
    type: record.type,
    stream: record.streamId,
    occurredAt: meta.occurredAt ?? new Date(record.created instanceof Date ? record.created.getTime() : Number(record.created ?? 0)).toISOString(),
    schemaVersion: meta.schemaVersion ?? 1,
    correlationId: meta.correlationId ?? id,
    causationId: meta.causationId ?? id,
    data: record.data,
    revision: Number(record.revision),
    // The prepare position is unique per event in $all (the commit position is shared by a batch).
    position: record.position ? record.position.prepare : -1n,
    ...(meta.traceparent ? { traceparent: meta.traceparent } : {}),
  };
}

/**
 * A record of a mesh stream as a RecordedEvent, or the PoisonMessage it is: the read-time checks
 * of JetStream's decodeMessage applied to what KurrentDB stores (a known category, a JSON object
 * body, a valid revision, a type of the catalog in that category, data passing its schema), so
 * every reader of this adapter skips and reports poison the same way. Pure: unit-tested without a server.
 */
export function classifyKurrentRecord(record: KurrentRecord): RecordedEvent | PoisonMessage {
  const seq = Number(record.position?.prepare ?? -1n);
  const subject = subjectOfStream(record.streamId);
  const category = record.streamId.slice(0, record.streamId.indexOf('-'));
  if (!Object.hasOwn(CATEGORY_OWNERS, category)) return new PoisonMessage(seq, subject, `stream ${record.streamId}: ${category} is not a known category`);
  const data = bodyOf(record.data);
  if (typeof data === 'string') return new PoisonMessage(seq, subject, data);
  const revision = Number(record.revision);
  if (!Number.isSafeInteger(revision) || revision < 0) return new PoisonMessage(seq, subject, `no valid revision: ${String(record.revision)}`);
  const problem = eventDataProblem(category, record.type, data);
  if (problem) return new PoisonMessage(seq, subject, problem);
  return fromKurrentRecord({ ...record, data });
}

/** The body as a JSON object, or why it is none (the client hands a JSON event's unparsable body back as a string, and a non-JSON event's as bytes). */
function bodyOf(data: unknown): Record<string, unknown> | string {
  let value = data;
  if (typeof data === 'string') {
    // The client's fallback for a JSON event whose body does not parse (a JSON string literal would come back as a string too: not an object either).
    try {
      JSON.parse(data);
    } catch (err) {
      return `not JSON (${err instanceof Error ? err.message : String(err)})`;
    }
  } else if (data instanceof Uint8Array) {
    try {
      value = JSON.parse(Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('utf8')) as unknown;
    } catch (err) {
      return `not JSON (${err instanceof Error ? err.message : String(err)})`;
    }
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return `not an event body: the data is ${value === null ? 'null' : Array.isArray(value) ? 'an array' : typeof value}`;
  }
  return value as Record<string, unknown>;
}

/** Streams KurrentDB itself writes (`$`-prefixed) and anything not shaped <category>-<id> are not ours. */
export function isMeshStream(streamId: string): boolean {
  return /^[a-z]{1,32}-[A-Za-z0-9_-]{1,128}$/.test(streamId);
}
