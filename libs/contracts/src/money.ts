import { z } from 'zod';
import { ContractError } from './errors';

/**
 * Money is bigint minor units in code and a decimal string of the major unit in JSON ("0.5").
 * Never a JS number: 6 GRC/core-hour is 1/6 minor unit per core-ms at 8 decimals.
 */
export interface Currency {
  code: string;
  exponent: number;
}

export const GRC: Currency = { code: 'GRC', exponent: 8 };
export const CURRENCIES: Record<string, Currency> = { GRC };

/** Amounts beyond 10^15 major units are refused as absurd: no wallet holds that, and it bounds arithmetic. */
export const MAX_MAJOR_DIGITS = 15;

export function currencyOf(code: string): Currency {
  const currency = CURRENCIES[code];
  if (!currency) throw ContractError.single('money', 'currency', `must be one of ${Object.keys(CURRENCIES).join('|')}`);
  return currency;
}

const DECIMAL = /^(-)?(\d+)(?:\.(\d+))?$/;

export interface ParseAmountOptions {
  field?: string;
  allowNegative?: boolean;
  allowZero?: boolean;
}

/** "1.5" -> 150000000n for GRC. Refuses non-numeric, too many decimals, absurd size, sign/zero per options. */
export function parseAmount(value: unknown, currency: Currency = GRC, options: ParseAmountOptions = {}): bigint {
  // Runs several times per charge and per wallet event replayed: no closure, one BigInt per call.
  if (typeof value !== 'string') return refuseAmount(options, 'must be a decimal string such as "0.5"');
  const match = DECIMAL.exec(value);
  if (!match) return refuseAmount(options, 'must be a decimal string such as "0.5"');
  const whole = match[2];
  const fraction = match[3] ?? '';
  if (fraction.length > currency.exponent) return refuseAmount(options, `must have at most ${currency.exponent} decimals for ${currency.code}`);
  if (whole.length > MAX_MAJOR_DIGITS && whole.replace(/^0+(?=\d)/, '').length > MAX_MAJOR_DIGITS)
    return refuseAmount(options, `must be below 10^${MAX_MAJOR_DIGITS}`);
  // whole * 10^exponent + fraction (padded to exponent digits) is the digits of both, joined.
  const minor = BigInt(whole + fraction.padEnd(currency.exponent, '0'));
  const signed = match[1] ? -minor : minor;
  if (signed < 0n && !options.allowNegative) return refuseAmount(options, 'must not be negative');
  if (signed === 0n && !options.allowZero) return refuseAmount(options, 'must be greater than zero');
  return signed;
}

function refuseAmount(options: ParseAmountOptions, rule: string): never {
  throw ContractError.single('money', options.field ?? 'amount', rule);
}

/** 150000000n -> "1.5" for GRC; always the shortest exact form. */
export function formatAmount(minor: bigint, currency: Currency = GRC): string {
  const negative = minor < 0n;
  const abs = negative ? -minor : minor;
  const scale = 10n ** BigInt(currency.exponent);
  const whole = abs / scale;
  const fraction = (abs % scale).toString().padStart(currency.exponent, '0').replace(/0+$/, '');
  return `${negative ? '-' : ''}${whole}${fraction ? `.${fraction}` : ''}`;
}

/** Schema for a money field in an event or command: a signed decimal string of the major unit. */
export const amountSchema = z
  .string({ error: 'must be a decimal string such as "0.5"' })
  .regex(/^-?\d{1,15}(\.\d{1,18})?$/, { error: 'must be a decimal string such as "0.5"' });

export const positiveAmountSchema = z
  .string({ error: 'must be a decimal string such as "0.5"' })
  .regex(/^\d{1,15}(\.\d{1,18})?$/, { error: 'must be a non-negative decimal string such as "0.5"' });
