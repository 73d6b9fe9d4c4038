/**
 * Small helpers the benchmarks share: timing, percentiles, a bounded job pool, polling, and the raw
 * JetStream read every read baseline uses. Figures only: nothing here is used by a service.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { NatsConnection } from 'nats';
import { EVENTS_STREAM } from '@mesh/contracts';
import type { BenchResult } from './run';

/** Milliseconds since `startNs` (a `process.hrtime.bigint()` reading). */
export const msSince = (startNs: bigint): number => Number(process.hrtime.bigint() - startNs) / 1e6;

/** Seconds since `startNs` (a `process.hrtime.bigint()` reading). */
export const secondsSince = (startNs: bigint): number => Number(process.hrtime.bigint() - startNs) / 1e9;

/** The middle value (the upper one of an even count). */
export const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** Nearest-rank percentile `p` (0 to 100) of unsorted `values`. */
export function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

/** Runs `fn`, which returns how many things it did, and returns how many per second. */
export async function perSecond(fn: () => Promise<number>): Promise<number> {
  const start = process.hrtime.bigint();
  const count = await fn();
  return count / secondsSince(start);
}

/** Runs `total` jobs with at most `width` in flight; returns `total`. */
export async function pool(total: number, width: number, job: (i: number) => Promise<unknown>): Promise<number> {
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < total) await job(next++);
    }),
  );
  return total;
}

/** Calls `probe` every `everyMs` until it returns a value (not undefined), or fails after `timeoutMs` naming `what`. */
export async function pollUntil<T>(probe: () => Promise<T | undefined>, timeoutMs: number, what: string, everyMs = 5): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = await probe();
    if (found !== undefined) return found;
    if (Date.now() > deadline) throw new Error(`${what} not seen after ${timeoutMs} ms`);
    await sleep(everyMs);
  }
}

/** Resolves with the first message on `subject` (core NATS sees every JetStream publish); fails after `timeoutMs`. */
export function firstMessage(nc: NatsConnection, subject: string, timeoutMs = 10_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      sub.unsubscribe();
      reject(new Error(`nothing on ${subject} within ${timeoutMs} ms`));
    }, timeoutMs);
    const sub = nc.subscribe(subject, {
      max: 1,
      callback: () => {
        clearTimeout(timer);
        resolve();
      },
    });
  });
}

/**
 * The stream raw publish baselines write to (subjects `bench.raw.>`): on MESH_EVENTS their bare
 * messages would be poison to our readers (quarantined, skipped, and failed by the audit), and the
 * read figures would compare different logs. Same storage and replicas as MESH_EVENTS, so the
 * publish cost is the same.
 */
export const RAW_STREAM = 'BENCH_RAW';

/** Creates RAW_STREAM like MESH_EVENTS (which must exist: connect an event store first). */
export async function addRawStream(nc: NatsConnection): Promise<void> {
  const jsm = await nc.jetstreamManager();
  const events = await jsm.streams.info(EVENTS_STREAM);
  await jsm.streams.add({ name: RAW_STREAM, subjects: ['bench.raw.>'], storage: events.config.storage, num_replicas: events.config.num_replicas });
}

/**
 * The raw read baseline: an ordered consumer over MESH_EVENTS from `fromSeq` that only parses each
 * message's JSON (as any consumer must), until `count` messages; returns how many it read.
 */
export async function rawRead(nc: NatsConnection, count: number, options: { fromSeq: number; filterSubjects?: string }): Promise<number> {
  const { fromSeq, filterSubjects } = options;
  const consumer = await nc.jetstream().consumers.get(EVENTS_STREAM, { opt_start_seq: fromSeq, ...(filterSubjects ? { filterSubjects } : {}) });
  const messages = await consumer.consume({ max_messages: 1000 });
  let seen = 0;
  for await (const m of messages) {
    JSON.parse(Buffer.from(m.data).toString()); // decode like a consumer would
    if (++seen >= count) break;
  }
  await messages.close();
  return seen;
}

/**
 * A rate of ours next to its raw baseline from the same run, with the goal of at least `minShare`
 * of it (`goal` says so in words, e.g. ">= 80% of raw").
 */
export function rateVsRaw(name: string, value: number, unit: string, baseline: { name: string; value: number }, minShare: number, goal: string): BenchResult {
  return { name, value, unit, baseline, goal, met: value / baseline.value >= minShare };
}
