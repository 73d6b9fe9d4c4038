import { setTimeout as sleep } from 'node:timers/promises';
import { messageOf } from './errors';

export interface RetryOptions {
  /** Attempts in all, the first included (>= 1). */
  attempts: number;
  /** Delay before the second attempt; doubles each time up to `maxDelayMs`. */
  baseDelayMs: number;
  maxDelayMs?: number;
  /** Whether a failure may be retried; a false answer rethrows it at once. Default: every failure. */
  retryable?: (err: unknown) => boolean;
  /** Called before each wait, e.g. to log. */
  onRetry?: (err: unknown, attempt: number, delayMs: number) => void;
}

/** Thrown when every attempt failed; the last failure is the `cause`. */
export class RetriesExhaustedError extends Error {
  constructor(
    what: string,
    readonly attempts: number,
    cause: unknown,
  ) {
    super(`${what}: failed ${attempts} times, last: ${messageOf(cause)}`, { cause });
    this.name = 'RetriesExhaustedError';
  }
}

/**
 * The one retry helper: runs `fn` up to `attempts` times with exponential backoff. Bounded by design
 * (TIGER_STYLE: limits on everything); a non-retryable failure is rethrown unchanged, exhausted
 * retries throw RetriesExhaustedError with the last failure as its cause.
 */
export async function retry<T>(what: string, fn: (attempt: number) => Promise<T>, options: RetryOptions): Promise<T> {
  if (!Number.isInteger(options.attempts) || options.attempts < 1) throw new RangeError(`retry ${what}: attempts must be an integer >= 1`);
  const maxDelayMs = options.maxDelayMs ?? Number.POSITIVE_INFINITY;
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (err) {
      if (options.retryable && !options.retryable(err)) throw err;
      if (attempt >= options.attempts) throw new RetriesExhaustedError(what, attempt, err);
      const delayMs = Math.min(options.baseDelayMs * 2 ** (attempt - 1), maxDelayMs);
      options.onRetry?.(err, attempt, delayMs);
      await sleep(delayMs);
    }
  }
}
