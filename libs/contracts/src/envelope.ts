import { z } from 'zod';
import { idSchema } from './ids';

export const ENVELOPE_MAX_BYTES = 256 * 1024; // one event; larger payloads go to the object store

/** What a writer hands the event store. */
export interface NewEvent<T extends string = string, D = unknown> {
  id: string;
  type: T;
  data: D;
  occurredAt?: string;
  schemaVersion?: number;
  correlationId?: string;
  causationId?: string;
}

/** What readers get back: the envelope (docs/architecture.md, "Events and the store") plus where it sits in its stream and in the log. */
export interface RecordedEvent<T extends string = string, D = unknown> {
  id: string;
  type: T;
  stream: string;
  occurredAt: string;
  schemaVersion: number;
  correlationId: string;
  causationId: string;
  data: D;
  /** 0-based index of the event in its stream. */
  revision: number;
  /** Position in the whole log (JetStream: stream sequence), strictly increasing. */
  position: bigint;
  /** W3C trace context of the writer, when it had one (travels in headers, not in the body). */
  traceparent?: string;
}

export const envelopeSchema = z.object({
  id: idSchema,
  type: z.string().regex(/^[A-Z][A-Za-z0-9]{0,63}$/, { error: 'must be PascalCase, at most 64 characters' }),
  stream: z.string().min(3).max(200),
  occurredAt: z.iso.datetime({ error: 'must be an ISO-8601 UTC timestamp' }),
  schemaVersion: z.int().min(1).max(1000),
  correlationId: idSchema,
  causationId: idSchema,
  data: z.unknown(),
});
