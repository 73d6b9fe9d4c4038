import { z } from 'zod';
import { defineRequest, type RequestDefinition } from '../define';
import { idSchema } from '../ids';
import type { ParseAmountOptions } from '../money';
import { apiIdSchema, moneyInputSchema } from './inputs';
import { apiSubject, querySubject } from '../subjects';

/**
 * Commands (`mesh.api.ledger.*`) and queries (`mesh.query.ledger.*`) of the ledger service.
 * Money in requests is a decimal string of the major unit ("0.5"); every reply carries money the
 * same way. Requests are strict objects: an unknown field is refused rather than silently dropped.
 */

/** User-given ids are at most 64 characters at the API so derived ids stay within 128 (coord.md). */
/** Kept under its old name: the ledger's modules import it. */
export const ledgerIdSchema = apiIdSchema;
const moneyInput = (options: ParseAmountOptions) => moneyInputSchema(options);

const positiveMoney = moneyInput({});
const nonNegativeMoney = moneyInput({ allowZero: true });
const signedMoney = moneyInput({ allowNegative: true });
const money = z.string();
const policyName = z.enum(['greedy', 'conservative']);
const walletKind = z.enum(['user', 'provider']);
const currencyCode = z.string().regex(/^[A-Z]{3,8}$/, { error: 'must be a currency code such as GRC' });
/** Log positions travel as decimal strings (they are bigint). */
const position = z.string().regex(/^\d+$/);

// --- commands --------------------------------------------------------------------------------------
export const openWalletRequest = defineRequest(
  'command',
  apiSubject('ledger', 'open-wallet'),
  z.strictObject({
    walletId: ledgerIdSchema,
    kind: walletKind.optional(),
    currency: currencyCode.optional(),
    maxDebt: nonNegativeMoney.optional(),
    minBalance: nonNegativeMoney.optional(),
    policy: policyName.optional(),
  }),
  z.object({
    walletId: idSchema,
    kind: walletKind,
    currency: z.string(),
    balance: money,
    maxDebt: money,
    minBalance: money,
    policy: policyName,
    eventId: idSchema,
    revision: z.int(),
    position,
  }),
  'Opens a user (default) or provider wallet. Defaults: GRC, maxDebt "0.5", minBalance "0", policy greedy. An existing id is refused (wallet_exists).',
  { access: 'tenant' },
);

const postingReply = z.object({
  walletId: idSchema,
  eventId: idSchema,
  amount: money,
  /** The wallet balance right after this posting (the original one for an idempotent repeat). */
  balance: money,
  revision: z.int(),
  /** True when the reference was already posted with the same amount: nothing was written. */
  duplicate: z.boolean(),
});

export const depositRequest = defineRequest(
  'command',
  apiSubject('ledger', 'deposit'),
  z.strictObject({ walletId: ledgerIdSchema, amount: positiveMoney, reference: idSchema, currency: currencyCode.optional() }),
  postingReply,
  'Credits a wallet; idempotent by reference (same amount: returns the original result; other amount: reference_conflict).',
);

export const withdrawRequest = defineRequest(
  'command',
  apiSubject('ledger', 'withdraw'),
  z.strictObject({ walletId: ledgerIdSchema, amount: positiveMoney, reference: idSchema, currency: currencyCode.optional() }),
  postingReply,
  'Refund to the user; refused (insufficient_funds) if it would take the wallet below zero; idempotent by reference.',
);

export const adjustRequest = defineRequest(
  'command',
  apiSubject('ledger', 'adjust'),
  z.strictObject({
    walletId: ledgerIdSchema,
    amount: signedMoney,
    reason: z.string({ error: 'must be a string' }).trim().min(1, { error: 'must not be empty' }).max(1024, { error: 'must be at most 1024 characters' }),
    reference: idSchema,
    currency: currencyCode.optional(),
  }),
  postingReply,
  'Manual signed correction with a reason; refused if it would take a user wallet below zero; idempotent by reference.',
);

export const setPolicyRequest = defineRequest(
  'command',
  apiSubject('ledger', 'set-policy'),
  z.strictObject({ walletId: ledgerIdSchema, maxDebt: nonNegativeMoney.optional(), minBalance: nonNegativeMoney.optional(), policy: policyName.optional() }),
  z.object({ walletId: idSchema, maxDebt: money, minBalance: money, policy: policyName, changed: z.boolean(), revision: z.int() }),
  'Changes the debt policy of a wallet (only the given fields); a no-op when nothing changes.',
  { access: 'tenant' },
);

// --- queries ---------------------------------------------------------------------------------------
export const balanceRequest = defineRequest(
  'query',
  querySubject('ledger', 'balance'),
  z.strictObject({ walletId: ledgerIdSchema }),
  z.object({
    walletId: idSchema,
    kind: walletKind,
    currency: z.string(),
    balance: money,
    /** max(balance, 0): what can be spent or withdrawn without going into debt. */
    available: money,
    /** max(-balance, 0). */
    debt: money,
    maxDebt: money,
    minBalance: money,
    policy: policyName,
    revision: z.int(),
    position,
  }),
  'Balance of one wallet from the projection, with available funds, debt and policy.',
  { access: 'tenant' },
);

export const statementLineSchema = z.object({
  revision: z.int(),
  position,
  eventId: idSchema,
  type: z.string(),
  occurredAt: z.string(),
  /** Signed change of the balance ("-0.001" for a debit). */
  amount: money,
  balanceAfter: money,
  cause: z.object({
    kind: z.enum(['open', 'deposit', 'withdrawal', 'adjustment', 'usage-debit', 'usage-credit', 'policy']),
    reference: z.string().optional(),
    reason: z.string().optional(),
    chargeId: z.string().optional(),
    taskId: z.string().optional(),
    containerId: z.string().optional(),
    functionId: z.string().optional(),
    counterpartyWalletId: z.string().optional(),
    /** usage-credit: the charges this credit posts (one event may credit several). */
    charges: z
      .array(
        z.object({
          chargeId: z.string(),
          amount: money,
          counterpartyWalletId: z.string(),
          containerId: z.string(),
          taskId: z.string().optional(),
          functionId: z.string(),
        }),
      )
      .optional(),
  }),
});
export type StatementLine = z.output<typeof statementLineSchema>;

export const statementRequest = defineRequest(
  'query',
  querySubject('ledger', 'statement'),
  z.strictObject({
    walletId: ledgerIdSchema,
    /** At most this many lines (default 100, at most 1000). */
    limit: z.int({ error: 'must be an integer' }).min(1, { error: 'must be >= 1' }).max(1000, { error: 'must be <= 1000' }).optional(),
    /** Lines after this revision, oldest first; without it, the latest `limit` lines. */
    afterRevision: z.int({ error: 'must be an integer' }).min(-1, { error: 'must be >= -1' }).optional(),
  }),
  z.object({
    walletId: idSchema,
    currency: z.string(),
    balance: money,
    total: z.int(),
    lines: z.array(statementLineSchema),
    /** Fewer lines than asked: the answer would have passed 512 KiB (page on with afterRevision). */
    truncated: z.boolean(),
    position,
  }),
  'Every posting of a wallet with its running balance, cause and links (charge, task, container); at most 512 KiB of lines per answer (`truncated` says when fewer than asked).',
  { access: 'tenant' },
);

export const taskCostRequest = defineRequest(
  'query',
  querySubject('ledger', 'task-cost'),
  z.strictObject({ taskId: ledgerIdSchema }),
  z.object({
    taskId: idSchema,
    walletId: idSchema.optional(),
    currency: z.string(),
    total: money,
    charges: z.int(),
    containers: z.array(z.object({ containerId: idSchema, total: money, charges: z.int() })),
    position,
  }),
  'What a task cost so far (sum of its usage debits), per container.',
  { access: 'tenant' },
);

export const containerCostRequest = defineRequest(
  'query',
  querySubject('ledger', 'container-cost'),
  z.strictObject({ containerId: ledgerIdSchema }),
  z.object({
    containerId: idSchema,
    walletId: idSchema.optional(),
    functionId: idSchema.optional(),
    currency: z.string(),
    total: money,
    charges: z.int(),
    tasks: z.array(z.object({ taskId: idSchema, total: money })),
    position,
  }),
  'What a container cost so far (sum of its usage debits), per task.',
  { access: 'tenant' },
);

export const providerEarningsRequest = defineRequest(
  'query',
  querySubject('ledger', 'provider-earnings'),
  z.strictObject({ walletId: ledgerIdSchema.optional() }),
  z.object({
    providers: z.array(z.object({ walletId: idSchema, currency: z.string(), earned: money, charges: z.int(), balance: money })),
    position,
  }),
  'Usage credits earned by one provider wallet, or by all of them.',
);

export const totalsRequest = defineRequest(
  'query',
  querySubject('ledger', 'totals'),
  z.strictObject({}),
  z.object({
    currency: z.string(),
    wallets: z.int(),
    userWallets: z.int(),
    providerWallets: z.int(),
    deposited: money,
    withdrawn: money,
    adjusted: money,
    debited: money,
    credited: money,
    userBalances: money,
    providerBalances: money,
    debt: money,
    walletEvents: z.int(),
    position,
  }),
  'Totals over all wallets: flows in and out, usage debited and credited, balances and debt.',
);

export const auditInvariantSchema = z.object({
  name: z.string(),
  description: z.string(),
  pass: z.boolean(),
  violations: z.int(),
  /** The first few violations, each one line. */
  examples: z.array(z.string()),
});

export const auditReportSchema = z.object({
  pass: z.boolean(),
  fromPosition: position,
  toPosition: position,
  events: z.int(),
  walletEvents: z.int(),
  wallets: z.int(),
  charges: z.int(),
  debits: z.int(),
  credits: z.int(),
  totals: z.object({ debited: money, credited: money, deposited: money, withdrawn: money, adjusted: money, balances: money }),
  invariants: z.array(auditInvariantSchema),
  /** The first event whose hash link does not match, if any. */
  firstBrokenLink: z.object({ stream: z.string(), revision: z.int(), eventId: z.string(), position, detail: z.string() }).optional(),
  durationMs: z.int(),
  eventsPerSecond: z.number(),
});
export type AuditReport = z.output<typeof auditReportSchema>;
export type AuditInvariant = z.output<typeof auditInvariantSchema>;

export const auditRequest = defineRequest(
  'query',
  querySubject('ledger', 'audit'),
  z.strictObject({}),
  auditReportSchema,
  'Replays the whole log from position 1 and checks the invariants (books balance, causes, no double posting, balances, hash chains, projection).',
);

export const ledgerRequests: RequestDefinition[] = [
  openWalletRequest,
  depositRequest,
  withdrawRequest,
  adjustRequest,
  setPolicyRequest,
  balanceRequest,
  statementRequest,
  taskCostRequest,
  containerCostRequest,
  providerEarningsRequest,
  totalsRequest,
  auditRequest,
];
