import { z } from 'zod';
import { defineEvent } from '../define';
import { idSchema } from '../ids';

// --- deadletter category (stream deadletter-<service>) -------------------------------------------
const isoTime = z.string().max(64);

export const MessageDeadLettered = defineEvent(
  'deadletter',
  'MessageDeadLettered',
  z.object({
    service: z.string().max(64),
    /** Durable consumer whose handler failed: the one `mesh deadletter replay` runs again. */
    consumer: z.string().max(128),
    subject: z.string().max(512),
    /** The failed event's own stream (`usage-c1`), when its envelope could be read. */
    stream: z.string().max(256).optional(),
    eventId: z.string().max(128).optional(),
    eventType: z.string().max(64).optional(),
    /** Sequence of the original message in MESH_EVENTS: a replay reads it from there. */
    streamSequence: z.string().regex(/^\d+$/),
    deliveries: z.int().min(1),
    error: z.string().max(4096),
    /** `contract`: the event breaks its contract (parked at once); `exhausted`: the retry window or the delivery bound ran out. */
    cause: z.enum(['contract', 'exhausted']).optional(),
    firstFailedAt: isoTime.optional(),
    lastFailedAt: isoTime.optional(),
  }),
  'A message failed every allowed delivery (or breaks its contract); it was parked here and skipped, and can be replayed (mesh deadletter replay).',
);

export const MessageReplayed = defineEvent(
  'deadletter',
  'MessageReplayed',
  z.object({
    /** Id of the MessageDeadLettered event replayed. */
    deadLetterId: z.string().max(256),
    service: z.string().max(64),
    consumer: z.string().max(128),
    streamSequence: z.string().regex(/^\d+$/),
    eventId: z.string().max(128).optional(),
    /** `applied`: the handler succeeded, the letter is resolved; `failed`: it failed again and stays parked. */
    outcome: z.enum(['applied', 'failed']),
    error: z.string().max(4096).optional(),
    replayedAt: isoTime,
  }),
  'An operator replayed a parked message: the owning service ran its handler on the original event again.',
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

export const infrastructureEvents = [MessageDeadLettered, MessageReplayed, MessageQuarantined, TestEvent];
export { idSchema };
