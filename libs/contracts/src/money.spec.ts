import { ContractError } from './errors';
import { GRC, formatAmount, parseAmount } from './money';

describe('money', () => {
  it('parses major-unit decimal strings into exact minor units', () => {
    expect(parseAmount('1')).toBe(100_000_000n);
    expect(parseAmount('0.5')).toBe(50_000_000n);
    expect(parseAmount('0.00000001')).toBe(1n);
    expect(parseAmount('123456789012345.12345678')).toBe(12345678901234512345678n);
    expect(parseAmount('-0.25', GRC, { allowNegative: true })).toBe(-25_000_000n);
    expect(parseAmount('0', GRC, { allowZero: true })).toBe(0n);
  });

  it.each([
    ['not a decimal', 'abc', /decimal string/],
    ['a JS number', 0.5, /decimal string/],
    ['exponent notation', '1e3', /decimal string/],
    ['too many decimals', '0.000000001', /at most 8 decimals for GRC/],
    ['absurdly large', '1000000000000000', /below 10\^15/],
    ['negative when not allowed', '-1', /must not be negative/],
    ['zero when not allowed', '0.0', /greater than zero/],
  ])('refuses %s naming the field and the rule', (_what, value, rule) => {
    expect(() => parseAmount(value, GRC, { field: 'deposit.amount' })).toThrow(ContractError);
    try {
      parseAmount(value, GRC, { field: 'deposit.amount' });
    } catch (err) {
      expect((err as ContractError).issues[0].field).toBe('deposit.amount');
      expect((err as ContractError).issues[0].rule).toMatch(rule);
    }
  });

  it('formats minor units back to the shortest exact decimal', () => {
    expect(formatAmount(100_000_000n)).toBe('1');
    expect(formatAmount(50_000_000n)).toBe('0.5');
    expect(formatAmount(1n)).toBe('0.00000001');
    expect(formatAmount(-25_000_000n)).toBe('-0.25');
    expect(formatAmount(0n)).toBe('0');
  });

  it('round-trips every amount exactly', () => {
    for (const s of ['0.1', '0.2', '0.3', '6', '4.00000001', '-0.49999999', '999999999999999.99999999']) {
      expect(formatAmount(parseAmount(s, GRC, { allowNegative: true }))).toBe(s);
    }
  });
});
