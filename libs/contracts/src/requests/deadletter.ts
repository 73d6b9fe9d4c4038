import { z } from 'zod';
import { defineRequest } from '../define';
import { type ServiceName } from '../ids';
import { apiSubject } from '../subjects';

/**
 * `mesh.api.<service>.deadletter-replay.<consumer>`: the runtime of the service that owns the
 * durable consumer `<consumer>` (queue group `mesh-<service>`) loads the parked message, reads the
 * original event by sequence from MESH_EVENTS, runs the same handler and records `MessageReplayed`.
 * The consumer is the subject's last token so that a per-node consumer (container-manager) is
 * replayed by its own node. Operator-only once the trust boundary exists (docs/deadletters.md).
 */
export const deadLetterReplaySubject = (service: ServiceName, consumer: string) => `${apiSubject(service, 'deadletter-replay')}.${consumer}`;

export const deadLetterReplayReplySchema = z.object({
  id: z.string().max(256),
  /** `applied`: handled now, resolved; `already-resolved`: an earlier replay applied it (no-op); `failed`: still parked. */
  outcome: z.enum(['applied', 'already-resolved', 'failed']),
  error: z.string().max(4096).optional(),
});
export type DeadLetterReplayReply = z.output<typeof deadLetterReplayReplySchema>;

export const deadLetterReplayRequest = (service: ServiceName) =>
  defineRequest(
    'command',
    // The AsyncAPI document lists the prefix; the durable consumer's name is appended as the last token.
    apiSubject(service, 'deadletter-replay'),
    z.object({ id: z.string().min(1, { error: 'must not be empty' }).max(256, { error: 'must be at most 256 characters' }) }),
    deadLetterReplayReplySchema,
    `Replays one parked message (MessageDeadLettered in deadletter-${service}) of a ${service} consumer: append the consumer name to the subject.`,
  );
