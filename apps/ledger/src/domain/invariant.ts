/**
 * A broken invariant of the books (a balanceAfter that is not the balance before plus the amount, a
 * gap in a stream's revisions): a bug or a tampered log, never a refusal of a request. It is thrown,
 * never accepted silently; a consumer naks the event that met it and, after its retry window, parks it
 * as a dead letter.
 */
export class InvariantError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'InvariantError';
  }
}

/**
 * A wallet stream that fails its seals when it is loaded: a prevHash that does not link to the
 * previous event, a stored hash that does not match the content, or a MAC that is missing or wrong
 * (a forged or altered event). The wallet is refused for posting (nothing is applied or written)
 * until the log is repaired; the message names the stream, the revision and the event id. `code`
 * is what a request's error reply carries.
 */
export class WalletIntegrityError extends InvariantError {
  readonly code = 'wallet_integrity';
  constructor(
    readonly stream: string,
    readonly revision: number,
    readonly eventId: string,
    problem: string,
  ) {
    super(`${stream} revision ${revision} (event ${eventId}) ${problem}: the wallet is refused for posting until the log is repaired`);
    this.name = 'WalletIntegrityError';
  }
}
