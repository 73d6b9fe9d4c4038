import { z } from 'zod';
import { defineEvent } from '../define';
import { idSchema } from '../ids';

// --- deadletter category (stream deadletter-<service>) -------------------------------------------
export const MessageDeadLettered = defineEvent(
  'deadletter',
  'MessageDeadLettered',
  z.object({
    service: z.string().max(64),
    consumer: z.string().max(128),
    subject: z.string().max(512),
    eventId: z.string().max(128).optional(),
    eventType: z.string().max(64).optional(),
    streamSequence: z.string().regex(/^\d+$/),
    deliveries: z.int().min(1),
    error: z.string().max(4096),
  }),
  'A message failed every allowed delivery; it was recorded here and skipped.',
);

// --- quarantine records (stream deadletter-quarantine-<sequence>, one per quarantined message) ------
export const MessageQuarantined = defineEvent(
  'deadletter',
  'MessageQuarantined',
  z.object({
    subject: z.string().max(512),
    streamSequence: z.string().regex(/^\d+$/),
    reason: z.string().max(1024),
    /** Which read met it first (read, readAll, subscribe) and in which process; later readers find the record already there. */
    reader: z.string().max(128),
  }),
  'A message on an event subject that is no valid event (not JSON, not an envelope, unknown type, data breaking its schema, stream not its subject, no revision); readers skip it. Written once per stream sequence, by the first reader that met it.',
);

// --- test category: only the event store's own contract tests write it --------------------------
export const TestEvent = defineEvent(
  'test',
  'TestEvent',
  z.object({ n: z.int(), note: z.string().max(1024).optional() }).passthrough(),
  'Contract-test fixture.',
);

export const infrastructureEvents = [MessageDeadLettered, MessageQuarantined, TestEvent];
export { idSchema };
