import { ContractError, currencyOf, DomainError, formatAmount, type EventOf, type PricePlan, type PricePlanSet } from '@mesh/contracts';
import type { Decider } from '@mesh/eventstore/decider';

/**
 * The versions of one price plan (stream `meter-plan_<planId>`). Each PricePlanSet is a new version
 * that takes effect from `effectiveFromMs`; setting the same prices again is a no-op, so a retried
 * command writes nothing. Samples already charged are never repriced.
 */

/** A plan stream holds only PricePlanSet (the meter category's other types live in container meters). */
export type PlanEvent = EventOf<typeof PricePlanSet>;

export interface PlanState {
  versions: PricePlan[];
}

export interface SetPricePlan {
  type: 'SetPricePlan';
  planId: string;
  currency: string;
  cpuPerCoreHourMinor: bigint;
  memoryPerGibHourMinor: bigint;
  perInvocationMinor: bigint;
  billing: 'used' | 'allocated';
  functionId?: string;
  /** Whether `functionId` names a deployed function (checked by the handler against the log). */
  functionKnown: boolean;
  /** Absent: from now (`nowMs`), and a repeat with the same prices is a no-op. */
  effectiveFromMs?: number;
  nowMs: number;
}

export const DEFAULT_PLAN_ID = 'default';

export function decidePlan(command: SetPricePlan, state: PlanState): PlanEvent[] {
  const where = 'set-price-plan';
  if (command.cpuPerCoreHourMinor <= 0n) throw ContractError.single(where, 'cpuPerCoreHour', 'must be greater than zero');
  if (command.memoryPerGibHourMinor < 0n) throw ContractError.single(where, 'memoryPerGibHour', 'must not be negative');
  if (command.perInvocationMinor < 0n) throw ContractError.single(where, 'perInvocation', 'must not be negative');
  if (command.functionId !== undefined && command.planId === DEFAULT_PLAN_ID)
    throw ContractError.single(where, 'functionId', 'the default plan applies to every function; name another planId');
  if (command.functionId !== undefined && !command.functionKnown) throw new DomainError('unknown_function', `function ${command.functionId} is not deployed`);
  const currency = currencyOf(command.currency);
  const latest = state.versions[state.versions.length - 1];
  const plan: PricePlan = {
    planId: command.planId,
    version: state.versions.length + 1,
    currency: currency.code,
    cpuPerCoreHour: formatAmount(command.cpuPerCoreHourMinor, currency),
    memoryPerGibHour: formatAmount(command.memoryPerGibHourMinor, currency),
    perInvocation: formatAmount(command.perInvocationMinor, currency),
    billing: command.billing,
    ...(command.functionId !== undefined ? { functionId: command.functionId } : {}),
    effectiveFromMs: command.effectiveFromMs ?? command.nowMs,
  };
  if (latest && samePrices(latest, plan) && (command.effectiveFromMs === undefined || command.effectiveFromMs === latest.effectiveFromMs)) return [];
  if (latest && latest.currency !== plan.currency)
    throw ContractError.single(where, 'currency', `plan ${command.planId} is in ${latest.currency}; a plan keeps its currency`);
  return [{ type: 'PricePlanSet', data: plan }];
}

function samePrices(a: PricePlan, b: PricePlan): boolean {
  return (
    a.cpuPerCoreHour === b.cpuPerCoreHour &&
    a.memoryPerGibHour === b.memoryPerGibHour &&
    a.perInvocation === b.perInvocation &&
    a.billing === b.billing &&
    a.functionId === b.functionId &&
    a.currency === b.currency
  );
}

export function evolvePlan(state: PlanState, event: PlanEvent): PlanState {
  return { versions: [...state.versions, event.data] };
}

export const planDecider: Decider<PlanState, SetPricePlan, PlanEvent> = {
  initialState: () => ({ versions: [] }),
  evolve: evolvePlan,
  decide: decidePlan,
};

/** The version of a plan in effect at `atMs`: the latest-set one whose effectiveFromMs <= atMs. */
export function versionAt(versions: readonly PricePlan[], atMs: number): PricePlan | undefined {
  let found: PricePlan | undefined;
  for (const v of versions) if (v.effectiveFromMs <= atMs && (!found || v.effectiveFromMs >= found.effectiveFromMs)) found = v;
  return found;
}
