import fc from 'fast-check';
import { add, compare, floor, formatRational, parseRational, rational, splitWhole, sub } from './rational';

describe('Rational', () => {
  it('keeps lowest terms with a positive denominator', () => {
    expect(rational(6n, -4n)).toEqual({ num: -3n, den: 2n });
    expect(formatRational(rational(10n, 20n))).toBe('1/2');
    expect(() => rational(1n, 0n)).toThrow(RangeError);
  });

  it('floors toward minus infinity', () => {
    expect(floor(rational(7n, 2n))).toBe(3n);
    expect(floor(rational(-7n, 2n))).toBe(-4n);
    expect(floor(rational(-6n, 2n))).toBe(-3n);
  });

  it('splits into whole + fraction in [0, 1) and parses its own format', () => {
    const { whole, fraction } = splitWhole(rational(1000n, 6n));
    expect(whole).toBe(166n);
    expect(formatRational(fraction)).toBe('2/3');
    expect(parseRational('4/6')).toEqual(rational(2n, 3n));
    expect(() => parseRational('-1/2')).toThrow(RangeError);
  });

  it('adds and subtracts exactly (property)', () => {
    const r = fc.tuple(fc.bigInt({ min: -(10n ** 12n), max: 10n ** 12n }), fc.bigInt({ min: 1n, max: 10n ** 12n })).map(([n, d]) => rational(n, d));
    fc.assert(fc.property(r, r, (a, b) => compare(sub(add(a, b), b), a) === 0));
  });
});
