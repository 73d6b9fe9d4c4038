import { MessageDeadLettered, MessageReplayed, isEvent, type EventData, type RecordedEvent, type ServiceName } from '@mesh/contracts';

/** The stream a service parks the messages its consumers could not handle in. */
export const deadLetterStream = (service: ServiceName) => `deadletter-${service}`;

/** Id of a dead letter: unique per (durable consumer, original stream sequence). */
export const deadLetterId = (consumer: string, streamSequence: bigint | number | string) => `${consumer}-${streamSequence}`;

/** One parked message and what became of it, folded from its deadletter stream. */
export interface DeadLetter extends EventData<typeof MessageDeadLettered> {
  id: string;
  /** When it was parked (the MessageDeadLettered event's time). */
  parkedAt: string;
  /** Log position of the MessageDeadLettered event. */
  position: string;
  status: 'parked' | 'resolved';
  /** Replays recorded so far (applied or failed). */
  replays: number;
  lastReplayError?: string;
  resolvedAt?: string;
}

/** A deadletter stream folded into its letters, in parking order; `revision` is the stream's last (-1 when empty). */
export interface DeadLetters {
  letters: Map<string, DeadLetter>;
  revision: number;
}

/**
 * Folds a `deadletter-<service>` stream. A MessageReplayed with outcome `applied` resolves its letter
 * (it is no longer listed, and a second replay is a no-op); a `failed` one only counts. Pure.
 */
export function foldDeadLetters(events: readonly RecordedEvent[]): DeadLetters {
  const letters = new Map<string, DeadLetter>();
  let revision = -1;
  for (const event of events) {
    revision = Math.max(revision, event.revision);
    if (isEvent(event, MessageDeadLettered)) {
      // The same id again would be the same message parked again (a retried write): keep the first.
      if (!letters.has(event.id)) {
        letters.set(event.id, { ...event.data, id: event.id, parkedAt: event.occurredAt, position: event.position.toString(), status: 'parked', replays: 0 });
      }
    } else if (isEvent(event, MessageReplayed)) {
      const letter = letters.get(event.data.deadLetterId);
      if (!letter) continue;
      letter.replays++;
      if (event.data.outcome === 'applied') {
        letter.status = 'resolved';
        letter.resolvedAt = event.data.replayedAt;
      } else {
        letter.lastReplayError = event.data.error;
      }
    }
  }
  return { letters, revision };
}

/** Id of the n-th (1-based) replay record of a letter: deterministic, so a retried append is deduplicated. */
export const replayEventId = (letterId: string, n: number) => `${letterId}-replay-${n}`;
