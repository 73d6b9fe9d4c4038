import { retry } from '@mesh/common';
import { ContractError, type NewEvent } from '@mesh/contracts';
import type { Decider } from '@mesh/eventstore/decider';
import { ConcurrencyError } from '@mesh/eventstore/errors';
import type { AppendResult, EventStore, ExpectedVersion } from '@mesh/eventstore/port';

/** Appends that failed because NATS did not answer are retried this often (100 ms, 200 ms ...); then the error propagates. */
export const APPEND_ATTEMPTS = 5;
const APPEND_RETRY_BASE_MS = 100;
/** Conflicts in a row before a command fails instead of spinning (this node is the single writer: one is already rare). */
const CONFLICTS_MAX = 5;

/** One append, retried while the store does not answer; a conflict or a contract violation is thrown at once. */
export function appendWithRetry(store: EventStore, stream: string, events: NewEvent[], expected: ExpectedVersion): Promise<AppendResult> {
  return retry(`append to ${stream}`, () => store.append(stream, events, expected), {
    attempts: APPEND_ATTEMPTS,
    baseDelayMs: APPEND_RETRY_BASE_MS,
    retryable: (err) => !(err instanceof ConcurrencyError) && !(err instanceof ContractError),
  });
}

/** Backoff of the long usage-append retry: starts at 100 ms, doubles, capped so a store that comes back is noticed within this. */
const LONG_RETRY_MAX_DELAY_MS = 2000;

/**
 * One append retried (same events, so the same event ids: a retry of an append that was in fact
 * stored is answered by JetStream's dedup window or the adapter's idempotent-retry check) while the
 * store does not answer, for up to `retryMs` from the first attempt: long enough to ride out a NATS
 * restart or pause. A conflict or a contract violation is thrown at once; past the bound the last
 * failure is thrown (the caller decides whether that is fatal).
 */
export function appendWithLongRetry(
  store: EventStore,
  stream: string,
  events: NewEvent[],
  expected: ExpectedVersion,
  retryMs: number,
  onRetry?: (err: unknown, attempt: number) => void,
): Promise<AppendResult> {
  const deadlineMs = Date.now() + retryMs;
  return retry(`append to ${stream}`, () => store.append(stream, events, expected), {
    // The time bound is what stops it; the attempt bound only keeps the loop finite whatever the clock does.
    attempts: Math.ceil(retryMs / APPEND_RETRY_BASE_MS) + APPEND_ATTEMPTS,
    baseDelayMs: APPEND_RETRY_BASE_MS,
    maxDelayMs: LONG_RETRY_MAX_DELAY_MS,
    retryable: (err) => !(err instanceof ConcurrencyError) && !(err instanceof ContractError) && Date.now() < deadlineMs,
    onRetry: (err, attempt) => onRetry?.(err, attempt),
  });
}

/** What this node knows of one of its streams: the folded state and the revision of the last event (-1: no stream). */
export interface Known<S> {
  state: S;
  version: number;
}

export const expectedOf = (version: number): ExpectedVersion => (version < 0 ? 'no_stream' : version);

/**
 * decide -> append with the expected version -> evolve. Decides against `known` first (what this
 * node wrote itself, so the hot path costs no read); on a conflict it loads the stream and decides
 * again (bounded). Every other failure propagates.
 */
export async function decideAndAppend<S, C, E extends { type: string; data: unknown }>(
  store: EventStore,
  stream: string,
  decider: Decider<S, C, E>,
  command: C,
  known: Known<S>,
  load: () => Promise<Known<S>>,
  toNew: (event: E) => NewEvent,
): Promise<Known<S>> {
  let current = known;
  for (let conflicts = 0; ; conflicts++) {
    const decided = decider.decide(command, current.state);
    if (decided.length === 0) return current;
    try {
      const result = await appendWithRetry(store, stream, decided.map(toNew), expectedOf(current.version));
      return { state: decided.reduce(decider.evolve, current.state), version: result.nextExpectedVersion };
    } catch (err) {
      if (!(err instanceof ConcurrencyError) || conflicts >= CONFLICTS_MAX) throw err;
      current = await load();
    }
  }
}
