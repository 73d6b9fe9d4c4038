import { z } from 'zod';
import { defineRequest, type RequestDefinition } from '../define';
import { idSchema } from '../ids';
import type { ParseAmountOptions } from '../money';
import { apiIdSchema, moneyInputSchema } from './inputs';
import { apiSubject, querySubject } from '../subjects';
import { pricePlanSchema, StandingChanged } from '../events/credit-manager';

/**
 * Commands (`mesh.api.credit-manager.*`) and queries (`mesh.query.credit-manager.*`) of the
 * credit-manager service. Money is a decimal string of the major unit; requests are strict objects.
 */

/** User-given ids are at most 64 characters at the API so derived ids stay within 128 (coord.md). */
const apiId = apiIdSchema;
/** A price: the error names parseAmount's rule ("must be greater than zero"). */
const price = (options: ParseAmountOptions) => moneyInputSchema(options, '6');

const money = z.string();

export const setPricePlanRequest = defineRequest(
  'command',
  apiSubject('credit-manager', 'set-price-plan'),
  z.strictObject({
    planId: apiId,
    /** Price of one core-hour of CPU (major unit): must be > 0. */
    cpuPerCoreHour: price({}),
    /** Price of one GiB-hour of memory; "0" (the default) leaves memory unpriced. */
    memoryPerGibHour: price({ allowZero: true }).optional(),
    /** Price of one task invocation (charged with the first sample of the task in a container); default "0". */
    perInvocation: price({ allowZero: true }).optional(),
    billing: z.enum(['used', 'allocated']).optional(),
    /** Makes this the plan of that (deployed) function unless the function names its own pricePlanId. */
    functionId: apiId.optional(),
    /** Epoch ms from which this version applies (default: now). Charges already made are not repriced. */
    effectiveFromMs: z.int({ error: 'must be epoch milliseconds' }).min(0, { error: 'must be >= 0' }).optional(),
    currency: z
      .string()
      .regex(/^[A-Z]{3,8}$/, { error: 'must be a currency code such as GRC' })
      .optional(),
  }),
  z.object({ plan: pricePlanSchema, changed: z.boolean() }),
  'Sets a price plan (a new version from effectiveFromMs). Same prices again: no-op (changed false). Refused: zero/negative CPU price, unknown function.',
);

export const pricePlansQuery = defineRequest(
  'query',
  querySubject('credit-manager', 'price-plans'),
  z.strictObject({ planId: apiId.optional() }),
  z.object({
    plans: z.array(z.object({ planId: idSchema, current: pricePlanSchema.nullable(), versions: z.array(pricePlanSchema) })),
    /** Functions known to the credit-manager and the plan their samples are priced with now. */
    functions: z.array(z.object({ functionId: idSchema, planId: idSchema, planVersion: z.int() })),
  }),
  'Every price plan (or one) with all its versions and the one in effect now, and the plan of each known function.',
  { access: 'tenant' },
);

const standingHistoryEntry = StandingChanged.schema.and(z.object({ revision: z.int(), eventId: idSchema }));

export const walletStandingQuery = defineRequest(
  'query',
  querySubject('credit-manager', 'standing'),
  z.strictObject({
    walletId: apiId,
    /** At most this many history entries, newest last (default 100, at most 1000). */
    limit: z.int({ error: 'must be an integer' }).min(1, { error: 'must be >= 1' }).max(1000, { error: 'must be <= 1000' }).optional(),
  }),
  z.object({
    walletId: idSchema,
    /** null: no standing recorded yet (unknown wallet, provider wallet, or not processed yet). */
    standing: z.enum(['normal', 'low', 'overdrawn', 'suspended']).nullable(),
    balance: money.nullable(),
    changes: z.int(),
    history: z.array(standingHistoryEntry),
  }),
  'Current standing of a wallet with its history of changes (each with the ledger event and balance that caused it).',
  { access: 'tenant' },
);

const chargeLine = z.object({
  chargeId: idSchema,
  containerId: idSchema,
  walletId: idSchema,
  functionId: idSchema,
  taskId: idSchema.optional(),
  sampleId: idSchema,
  sampleSeq: z.int(),
  windowStartMs: z.int(),
  windowEndMs: z.int(),
  cpuNanos: z.int(),
  memoryByteMs: z.string(),
  planId: idSchema,
  planVersion: z.int(),
  amount: money,
  remainder: z.string(),
});

export const chargesQuery = defineRequest(
  'query',
  querySubject('credit-manager', 'charges'),
  z
    .strictObject({
      containerId: apiId.optional(),
      taskId: apiId.optional(),
      /** At most this many charge lines, newest last (default 100, at most 1000); the totals cover all. */
      limit: z.int({ error: 'must be an integer' }).min(1, { error: 'must be >= 1' }).max(1000, { error: 'must be <= 1000' }).optional(),
    })
    .refine((q) => (q.containerId === undefined) !== (q.taskId === undefined), { error: 'give exactly one of containerId or taskId', path: ['containerId'] }),
  z.object({
    containerId: idSchema.optional(),
    taskId: idSchema.optional(),
    currency: z.string(),
    totals: z.object({ amount: money, cpuNanos: z.string(), memoryByteMs: z.string(), charges: z.int(), anomalies: z.int() }),
    charges: z.array(chargeLine),
    anomalies: z.array(z.object({ sampleId: idSchema, sampleSeq: z.int(), reason: z.string(), detail: z.string() })),
  }),
  'Charges of a container or a task with the usage each one priced, totals over all of them, and the anomalies recorded.',
  { access: 'tenant' },
);

export const creditManagerRequests: RequestDefinition[] = [setPricePlanRequest, pricePlansQuery, walletStandingQuery, chargesQuery];
