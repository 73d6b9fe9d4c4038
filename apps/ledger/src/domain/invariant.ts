/**
 * A broken invariant of the books (a balanceAfter that is not the balance before plus the amount, a
 * gap in a stream's revisions): a bug or a tampered log, never a refusal of a request. It is thrown,
 * never accepted silently; a consumer naks the event that met it and, after CONSUMER_MAX_DELIVERIES,
 * dead-letters it.
 */
export class InvariantError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'InvariantError';
  }
}
