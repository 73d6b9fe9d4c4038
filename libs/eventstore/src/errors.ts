/** The stream was not at the revision the writer expected: reload, decide again, retry. */
export class ConcurrencyError extends Error {
  readonly code = 'wrong_expected_version';
  constructor(
    readonly stream: string,
    readonly expected: number | string,
    readonly actual: number,
  ) {
    super(`stream ${stream}: expected version ${expected}, actual ${actual}`);
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
