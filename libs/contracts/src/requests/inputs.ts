import { z } from 'zod';
import { ContractError } from '../errors';
import { GRC, parseAmount, type ParseAmountOptions } from '../money';

/**
 * Field rules shared by every command: ids users give are at most 64 characters (so derived ids
 * such as `<taskId>-<attempt>` or `debit-<chargeId>` stay within the 128 of the id rule), and money
 * is a decimal string checked with parseAmount's rules so the error names the rule.
 */
export const apiIdSchema = z.string({ error: 'must be a string' }).regex(/^[A-Za-z0-9_-]{1,64}$/, { error: 'must match [A-Za-z0-9_-]{1,64}' });

export function moneyInputSchema(options: ParseAmountOptions, example = '0.5') {
  return z
    .string({ error: `must be a decimal string such as "${example}"` })
    .max(40, { error: 'must be at most 40 characters' })
    .superRefine((value, ctx) => {
      try {
        parseAmount(value, GRC, options);
      } catch (err) {
        ctx.addIssue({ code: 'custom', message: err instanceof ContractError ? err.issues[0].rule : String(err) });
      }
    });
}
