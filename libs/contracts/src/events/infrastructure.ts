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

// --- test category: only the event store's own contract tests write it --------------------------
export const TestEvent = defineEvent(
  'test',
  'TestEvent',
  z.object({ n: z.int(), note: z.string().max(1024).optional() }).passthrough(),
  'Contract-test fixture.',
);

export const infrastructureEvents = [MessageDeadLettered, TestEvent];
export { idSchema };
