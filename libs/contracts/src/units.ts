import { z } from 'zod';

/** Limits that no sane request exceeds; they bound arithmetic and catch unit mistakes (ms vs s, bytes vs MiB). */
export const LIMITS = {
  cpuMillisMax: 1_024_000, // 1024 cores
  memoryBytesMax: 4 * 1024 ** 4, // 4 TiB
  timeoutMsMax: 7 * 24 * 3600 * 1000,
  scriptBytesMax: 64 * 1024,
  inlineInputBytesMax: 64 * 1024, // what an EVENT carries inline: the scheduler stores a larger input as an object
  // What submit-task carries inline: base64 (4/3) plus JSON stays under nats-server's default max_payload (1 MiB).
  requestInputBytesMax: 512 * 1024,
  maxAttemptsMax: 100,
  labelsMax: 32,
} as const;

export const cpuMillisSchema = z.int({ error: 'must be an integer number of millicores' }).min(1).max(LIMITS.cpuMillisMax);
export const memoryBytesSchema = z.int({ error: 'must be an integer number of bytes' }).min(0).max(LIMITS.memoryBytesMax);
export const durationMsSchema = z.int({ error: 'must be an integer number of milliseconds' }).min(0).max(LIMITS.timeoutMsMax);
/** Epoch milliseconds. */
export const epochMsSchema = z.int({ error: 'must be epoch milliseconds' }).min(0);
export const nonNegativeIntSchema = z.int().min(0);
export const labelsSchema = z
  .record(z.string().max(64), z.string().max(256))
  .refine((r) => Object.keys(r).length <= LIMITS.labelsMax, { error: `at most ${LIMITS.labelsMax} labels` });
