import { z } from 'zod';
import { defineEvent } from '../define';
import { idSchema, streamName } from '../ids';
import { amountSchema, positiveAmountSchema } from '../money';

export const STANDINGS = ['normal', 'low', 'overdrawn', 'suspended'] as const;
export const standingSchema = z.enum(STANDINGS);
export type Standing = z.output<typeof standingSchema>;

/** A price as an exact rational: `amount` of the major unit per `per` (e.g. "6" per core-hour). */
export const pricePlanSchema = z.object({
  planId: idSchema,
  version: z.int().min(1),
  currency: z.string().min(3).max(8),
  cpuPerCoreHour: positiveAmountSchema,
  memoryPerGibHour: positiveAmountSchema,
  perInvocation: positiveAmountSchema,
  billing: z.enum(['used', 'allocated']),
  functionId: idSchema.optional(),
  effectiveFromMs: z.int().min(0),
});
export type PricePlan = z.output<typeof pricePlanSchema>;

// --- meter category: stream meter-<containerId> for charges, meter-plan_<planId> for plans ------------
/** Price plans live in the meter category, one stream per plan (`meter-plan_<planId>`). */
export const PRICE_PLAN_STREAM_PREFIX = 'plan_';
export const pricePlanStream = (planId: string) => streamName('meter', `${PRICE_PLAN_STREAM_PREFIX}${planId}`);

export const PricePlanSet = defineEvent('meter', 'PricePlanSet', pricePlanSchema, 'A price plan (or a new version of one) takes effect from effectiveFromMs.');

export const UsageCharged = defineEvent(
  'meter',
  'UsageCharged',
  z.object({
    chargeId: idSchema,
    containerId: idSchema,
    walletId: idSchema,
    functionId: idSchema,
    nodeId: idSchema,
    taskId: idSchema.optional(),
    sampleId: idSchema,
    sampleSeq: z.int().min(1),
    windowStartMs: z.int().min(0),
    windowEndMs: z.int().min(0),
    cpuNanos: z.int().min(0),
    memoryByteMs: z.string().regex(/^\d+$/),
    planId: idSchema,
    planVersion: z.int().min(1),
    currency: z.string().min(3).max(8),
    /** Charged now, in the major unit (decimal string). May be "0" when the carried remainder absorbs it. */
    amount: positiveAmountSchema,
    /** Exact fraction of a minor unit carried to the next sample, as "numerator/denominator". */
    remainder: z.string().regex(/^\d+\/\d+$/),
    providerWalletId: idSchema,
    // --- additive (optional) fields: the plan's billing mode and the container's running totals ---
    /** Which usage was priced: what the container consumed (`used`) or what it was given (`allocated`). */
    billing: z.enum(['used', 'allocated']).optional(),
    /** True when this charge includes the plan's per-invocation price (first sample of a task in the container). */
    invocation: z.boolean().optional(),
    /** Sum of all charges of this container so far, this one included (major unit). */
    totalAmount: positiveAmountSchema.optional(),
    /** Sum of the priced CPU core-ns / memory byte-ms of this container so far (decimal integer strings). */
    totalCpuNanos: z.string().regex(/^\d+$/).optional(),
    totalMemoryByteMs: z.string().regex(/^\d+$/).optional(),
    /** True when this sample arrived after later ones of its container (it filled a gap). */
    late: z.boolean().optional(),
  }),
  'One usage sample priced; the ledger debits the wallet and credits the provider.',
);

export const UsageAnomalyRecorded = defineEvent(
  'meter',
  'UsageAnomalyRecorded',
  z.object({
    containerId: idSchema,
    sampleId: idSchema,
    sampleSeq: z.int().min(0),
    reason: z.enum(['unknown-container', 'out-of-order', 'duplicate', 'invalid-window', 'gap']),
    detail: z.string().max(1024),
    walletId: idSchema.optional(),
    functionId: idSchema.optional(),
    /** Seqs the gap skipped (for `gap`): they are still charged if they arrive later. */
    missingFromSeq: z.int().min(1).optional(),
    missingToSeq: z.int().min(1).optional(),
  }),
  'A sample that could not be charged to anyone, or arrived out of order, kept for the audit.',
);

// --- standing category (stream standing-<walletId>) -----------------------------------------------
export const StandingChanged = defineEvent(
  'standing',
  'StandingChanged',
  z.object({
    walletId: idSchema,
    from: standingSchema.nullable(),
    to: standingSchema,
    balance: amountSchema,
    currency: z.string().min(3).max(8),
    maxDebt: positiveAmountSchema,
    minBalance: positiveAmountSchema,
    policy: z.enum(['greedy', 'conservative']),
    /** The ledger event (wallet stream, revision) whose balance caused the change. */
    causeEventId: idSchema,
    causeRevision: z.int().min(0),
    changedAtMs: z.int().min(0),
  }),
  'The wallet standing changed: overdrawn throttles, suspended aborts, normal/low lift both.',
);

export const meterEvents = [PricePlanSet, UsageCharged, UsageAnomalyRecorded] as const;
export const standingEvents = [StandingChanged] as const;
export const creditManagerEvents = [...meterEvents, ...standingEvents] as const;
