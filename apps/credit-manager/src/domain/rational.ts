/**
 * Exact non-negative-denominator rationals over bigint, for money below one minor unit. Always kept
 * in lowest terms with den > 0, so equal values have equal representations ("n/d" strings too).
 */
export interface Rational {
  readonly num: bigint;
  readonly den: bigint;
}

function gcd(a: bigint, b: bigint): bigint {
  let x = a < 0n ? -a : a;
  let y = b < 0n ? -b : b;
  while (y !== 0n) [x, y] = [y, x % y];
  return x;
}

export function rational(num: bigint, den = 1n): Rational {
  if (den === 0n) throw new RangeError('rational: zero denominator');
  if (den < 0n) [num, den] = [-num, -den];
  const g = gcd(num, den);
  return g > 1n ? { num: num / g, den: den / g } : { num, den };
}

export const ZERO: Rational = { num: 0n, den: 1n };

export function add(a: Rational, b: Rational): Rational {
  return rational(a.num * b.den + b.num * a.den, a.den * b.den);
}

export function sub(a: Rational, b: Rational): Rational {
  return rational(a.num * b.den - b.num * a.den, a.den * b.den);
}

/** Largest integer <= r (bigint division truncates toward zero, so negatives need a step down). */
export function floor(r: Rational): bigint {
  const q = r.num / r.den;
  return r.num < 0n && q * r.den !== r.num ? q - 1n : q;
}

/** Splits r into its whole part and the fraction in [0, 1) left over. */
export function splitWhole(r: Rational): { whole: bigint; fraction: Rational } {
  const whole = floor(r);
  return { whole, fraction: rational(r.num - whole * r.den, r.den) };
}

export function isZero(r: Rational): boolean {
  return r.num === 0n;
}

export function formatRational(r: Rational): string {
  return `${r.num}/${r.den}`;
}

const FRACTION = /^(\d+)\/(\d+)$/;

/** "n/d" (non-negative, as written in UsageCharged.remainder) -> Rational. */
export function parseRational(text: string): Rational {
  const match = FRACTION.exec(text);
  if (!match) throw new RangeError(`not a fraction "n/d": ${text}`);
  return rational(BigInt(match[1]), BigInt(match[2]));
}

export function compare(a: Rational, b: Rational): number {
  const d = a.num * b.den - b.num * a.den;
  return d < 0n ? -1 : d > 0n ? 1 : 0;
}
