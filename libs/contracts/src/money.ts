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
  const field = options.field ?? 'amount';
  const fail = (rule: string): never => {
    throw ContractError.single('money', field, rule);
  };
  if (typeof value !== 'string') fail('must be a decimal string such as "0.5"');
  const match = DECIMAL.exec(value as string);
  if (!match) fail('must be a decimal string such as "0.5"');
  const [, minus, whole, fraction = ''] = match!;
  if (fraction.length > currency.exponent) fail(`must have at most ${currency.exponent} decimals for ${currency.code}`);
  if (whole.replace(/^0+(?=\d)/, '').length > MAX_MAJOR_DIGITS) fail(`must be below 10^${MAX_MAJOR_DIGITS}`);
  const minor = BigInt(whole) * 10n ** BigInt(currency.exponent) + BigInt(fraction.padEnd(currency.exponent, '0') || '0');
  const signed = minus ? -minor : minor;
  if (signed < 0n && !options.allowNegative) fail('must not be negative');
  if (signed === 0n && !options.allowZero) fail('must be greater than zero');
  return signed;
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
