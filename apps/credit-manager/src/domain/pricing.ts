import { currencyOf, parseAmount, type EventData, type PricePlan, type ResourceSampled } from '@mesh/contracts';
import { add, rational, ZERO, type Rational } from './rational';

export type Sample = EventData<typeof ResourceSampled>;

/** ns of CPU time in one core-hour: a price per core-hour is per this many core-ns. */
export const CORE_NS_PER_HOUR = 3_600_000_000_000n;
/** byte-ms in one GiB-hour. */
export const BYTE_MS_PER_GIB_HOUR = 2n ** 30n * 3_600_000n;
/** core-ns in one millicore-ms: 1/1000 core for 1e6 ns. */
const CORE_NS_PER_MILLICORE_MS = 1_000n;

/** A plan version with its prices in minor units of its currency (the arithmetic form). */
export interface PlanPrices {
  planId: string;
  version: number;
  currency: string;
  billing: 'used' | 'allocated';
  cpuPerCoreHourMinor: bigint;
  memoryPerGibHourMinor: bigint;
  perInvocationMinor: bigint;
}

export function pricesOf(plan: PricePlan): PlanPrices {
  const currency = currencyOf(plan.currency);
  const minor = (value: string, field: string) => parseAmount(value, currency, { allowZero: true, field });
  return {
    planId: plan.planId,
    version: plan.version,
    currency: plan.currency,
    billing: plan.billing,
    cpuPerCoreHourMinor: minor(plan.cpuPerCoreHour, 'cpuPerCoreHour'),
    memoryPerGibHourMinor: minor(plan.memoryPerGibHour, 'memoryPerGibHour'),
    perInvocationMinor: minor(plan.perInvocation, 'perInvocation'),
  };
}

/** The usage a sample is priced on: consumed (`used`) or given (`allocated`) over the window. */
export interface PricedUsage {
  cpuNanos: bigint;
  memoryByteMs: bigint;
}

export function usageOf(sample: Sample, billing: PlanPrices['billing']): PricedUsage {
  const windowMs = BigInt(sample.windowEndMs - sample.windowStartMs);
  if (billing === 'allocated') {
    return { cpuNanos: BigInt(sample.cpuLimitMillis) * windowMs * CORE_NS_PER_MILLICORE_MS, memoryByteMs: BigInt(sample.memoryLimitBytes) * windowMs };
  }
  return { cpuNanos: BigInt(sample.cpuNanos), memoryByteMs: BigInt(sample.memoryBytesAvg) * windowMs };
}

/** The exact price of `usage` (plus one invocation when asked) in minor units, as a fraction. */
export function exactAmount(usage: PricedUsage, plan: PlanPrices, invocation: boolean): Rational {
  const cpu = rational(usage.cpuNanos * plan.cpuPerCoreHourMinor, CORE_NS_PER_HOUR);
  const memory = rational(usage.memoryByteMs * plan.memoryPerGibHourMinor, BYTE_MS_PER_GIB_HOUR);
  return add(add(cpu, memory), invocation ? rational(plan.perInvocationMinor) : ZERO);
}
