/** The stream was not at the revision the writer expected: reload, decide again, retry. */
export class ConcurrencyError extends Error {
  readonly code = 'wrong_expected_version';
  constructor(
    readonly stream: string,
    readonly expected: number | string,
    readonly actual: number,
    options?: { cause?: unknown },
  ) {
    super(`stream ${stream}: expected version ${expected}, actual ${actual}`, options);
    this.name = 'ConcurrencyError';
  }
}

/** The same event id was already appended with different content or at another place. */
export class DuplicateEventError extends Error {
  readonly code = 'duplicate_event';
  constructor(
    readonly eventId: string,
    detail: string,
  ) {
    super(`event ${eventId}: ${detail}`);
    this.name = 'DuplicateEventError';
  }
}

/**
 * A service appended to a stream whose category another service owns (CATEGORY_OWNERS in
 * libs/contracts/src/ids.ts: one writer per category). A programming error, never retried.
 */
export class CategoryOwnershipError extends Error {
  readonly code = 'category_not_owned';
  constructor(
    readonly service: string,
    readonly stream: string,
    readonly owner: string,
  ) {
    super(`${service} may not append to ${stream}: category ${stream.slice(0, stream.indexOf('-'))} is written only by ${owner}`);
    this.name = 'CategoryOwnershipError';
  }
}

/**
 * What the store read breaks one of its own invariants (e.g. a gap in a stream's revisions): the
 * log is damaged or another writer bypassed the store. Never retried; names where it was seen.
 */
export class EventStoreInvariantError extends Error {
  readonly code = 'event_store_invariant';
  constructor(
    message: string,
    readonly stream?: string,
    readonly revision?: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'EventStoreInvariantError';
  }
}

/**
 * Throws EventStoreInvariantError unless `events` (one stream, read from `fromRevision`) carry the
 * revisions fromRevision, fromRevision + 1, ... without a gap. Runs on every read: a plain loop.
 */
export function assertContiguousRevisions(stream: string, events: readonly { revision: number }[], fromRevision: number): void {
  for (let i = 0; i < events.length; i++) {
    const revision = events[i].revision;
    if (revision !== fromRevision + i) {
      throw new EventStoreInvariantError(
        `stream ${stream}: revision ${fromRevision + i} expected at index ${i}, found ${revision} (a gap or a duplicate in the stream)`,
        stream,
        fromRevision + i,
      );
    }
  }
}
