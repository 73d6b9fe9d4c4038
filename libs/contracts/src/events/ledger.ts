import { z } from 'zod';
import { defineEvent } from '../define';
import { idSchema } from '../ids';
import { amountSchema, positiveAmountSchema } from '../money';

export const walletPolicySchema = z.object({
  maxDebt: positiveAmountSchema,
  minBalance: positiveAmountSchema,
  policy: z.enum(['greedy', 'conservative']),
});
export type WalletPolicy = z.output<typeof walletPolicySchema>;

/** The prevHash of the first event of every wallet stream (64 zeros). */
export const GENESIS_HASH = '0'.repeat(64);

/**
 * Every wallet event carries the balance after it (so consumers never keep a second copy of the
 * money) and a hash chain link: prevHash is the hash of the previous event of the same wallet
 * (GENESIS_HASH for the first). `hash` is this event's own hash, stored so a reader can check one
 * event without its successor: sha256 of the canonical JSON (keys sorted, undefined dropped) of
 * `{ type, data: data without hash, prevHash, mac and macKeyId, prevHash }` (docs/ledger.md).
 * `mac` is the ledger's HMAC-SHA-256 of the same body under its secret key `macKeyId`: the chain can
 * be recomputed by anyone, the MAC only by the ledger, so a forged event is told apart. Events
 * written before MACs existed lack both (the rule for them is in docs/ledger.md, "Event MAC").
 */
const posting = {
  walletId: idSchema,
  currency: z.string().min(3).max(8),
  balanceAfter: amountSchema,
  prevHash: z.string().regex(/^[0-9a-f]{64}$/),
  hash: z
    .string()
    .regex(/^[0-9a-f]{64}$/)
    .optional(),
  mac: z
    .string()
    .regex(/^[0-9a-f]{64}$/)
    .optional(),
  macKeyId: z
    .string()
    .regex(/^[A-Za-z0-9_-]{1,64}$/)
    .optional(),
};

// --- wallet category (stream wallet-<walletId>) ---------------------------------------------------
export const WalletOpened = defineEvent(
  'wallet',
  'WalletOpened',
  z.object({
    ...posting,
    kind: z.enum(['user', 'provider']),
    ...walletPolicySchema.shape,
    openedAtMs: z.int().min(0),
    /** The tenant that owns the wallet (from the caller's subject); absent: the operator's. */
    tenantId: idSchema.optional(),
  }),
  'A user or provider wallet was opened with its debt policy.',
);

export const FundsDeposited = defineEvent(
  'wallet',
  'FundsDeposited',
  z.object({
    ...posting,
    amount: positiveAmountSchema,
    reference: idSchema,
  }),
  'A deposit, idempotent by external reference; repays debt first since the balance is one number.',
);

export const FundsWithdrawn = defineEvent(
  'wallet',
  'FundsWithdrawn',
  z.object({
    ...posting,
    amount: positiveAmountSchema,
    reference: idSchema,
  }),
  'A refund to the user; never takes the wallet below zero.',
);

export const BalanceAdjusted = defineEvent(
  'wallet',
  'BalanceAdjusted',
  z.object({
    ...posting,
    amount: amountSchema,
    reason: z.string().min(1).max(1024),
    reference: idSchema,
  }),
  'A manual correction with its reason; never takes a user wallet below zero.',
);

export const UsageDebited = defineEvent(
  'wallet',
  'UsageDebited',
  z.object({
    ...posting,
    amount: positiveAmountSchema,
    chargeId: idSchema,
    providerWalletId: idSchema,
    containerId: idSchema,
    taskId: idSchema.optional(),
    functionId: idSchema,
  }),
  'A usage charge taken from a user wallet (may go below zero: the usage already happened).',
);

/**
 * Charges one UsageCredited may name. The provider wallet is the hot stream of the ledger (every
 * charge credits it), so its credits are group-committed: the charges that arrive while one credit
 * is being appended go into the next. 200 entries of at most ~650 bytes stay well inside one event.
 */
export const CREDIT_BATCH_MAX = 200;

export const creditedChargeSchema = z.object({
  chargeId: idSchema,
  amount: positiveAmountSchema,
  userWalletId: idSchema,
  containerId: idSchema,
  taskId: idSchema.optional(),
  functionId: idSchema,
});
export type CreditedCharge = z.output<typeof creditedChargeSchema>;

/**
 * Written since 2026-11-23: `charges` lists the charges credited, `amount` is their sum. Logs from
 * before hold the single-charge form (the charge's fields at the top level, no `charges`); readers
 * take both through `creditedChargesOf`.
 */
export const UsageCredited = defineEvent(
  'wallet',
  'UsageCredited',
  z.union([
    z.object({
      ...posting,
      /** The sum of the charges' amounts. */
      amount: positiveAmountSchema,
      charges: z.array(creditedChargeSchema).min(1).max(CREDIT_BATCH_MAX),
    }),
    z.object({ ...posting, ...creditedChargeSchema.shape }),
  ]),
  'The provider side of one or more usage charges: each names the user wallet debited the same amount for it, and `amount` is their sum (a single-charge form without `charges` is read too).',
);

/** The charges a UsageCredited credits, in either form. */
export function creditedChargesOf(data: Record<string, unknown>): CreditedCharge[] {
  if (Array.isArray(data.charges)) return data.charges as CreditedCharge[];
  const { chargeId, amount, userWalletId, containerId, taskId, functionId } = data as CreditedCharge;
  return [{ chargeId, amount, userWalletId, containerId, functionId, ...(taskId !== undefined ? { taskId } : {}) }];
}

export const WalletPolicyChanged = defineEvent(
  'wallet',
  'WalletPolicyChanged',
  z.object({
    ...posting,
    ...walletPolicySchema.shape,
  }),
  'The debt policy of a wallet changed.',
);

export const walletEvents = [WalletOpened, FundsDeposited, FundsWithdrawn, BalanceAdjusted, UsageDebited, UsageCredited, WalletPolicyChanged] as const;
export const ledgerEvents = walletEvents;
