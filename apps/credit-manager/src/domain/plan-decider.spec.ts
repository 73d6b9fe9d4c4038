import { ContractError, DomainError, parseAmount } from '@mesh/contracts';
import { spec } from '@mesh/testing/decider-spec';
import { planDecider, versionAt, type PlanEvent, type SetPricePlan } from './plan-decider';

const set = (over: Partial<SetPricePlan> = {}): SetPricePlan => ({
  type: 'SetPricePlan',
  planId: 'p1',
  currency: 'GRC',
  cpuPerCoreHourMinor: parseAmount('6'),
  memoryPerGibHourMinor: 0n,
  perInvocationMinor: 0n,
  billing: 'used',
  functionKnown: false,
  nowMs: 5000,
  ...over,
});

const v1: PlanEvent = {
  type: 'PricePlanSet',
  data: { planId: 'p1', version: 1, currency: 'GRC', cpuPerCoreHour: '6', memoryPerGibHour: '0', perInvocation: '0', billing: 'used', effectiveFromMs: 5000 },
};

describe('plan decider', () => {
  it('records version 1 effective now', () => {
    spec(planDecider).given([]).when(set()).then([v1]);
  });

  it('is a no-op for the same prices again, and a new version for new prices', () => {
    spec(planDecider)
      .given([v1])
      .when(set({ nowMs: 9000 }))
      .thenNothing();
    spec(planDecider)
      .given([v1])
      .when(set({ cpuPerCoreHourMinor: parseAmount('7'), effectiveFromMs: 8000 }))
      .then([{ type: 'PricePlanSet', data: { ...v1.data, version: 2, cpuPerCoreHour: '7', effectiveFromMs: 8000 } }]);
  });

  it('refuses a zero or negative CPU price and negative other prices, naming the field', () => {
    spec(planDecider)
      .given([])
      .when(set({ cpuPerCoreHourMinor: 0n }))
      .thenThrows(ContractError, /cpuPerCoreHour: must be greater than zero/);
    spec(planDecider)
      .given([])
      .when(set({ cpuPerCoreHourMinor: -1n }))
      .thenThrows(ContractError, /cpuPerCoreHour/);
    spec(planDecider)
      .given([])
      .when(set({ memoryPerGibHourMinor: -1n }))
      .thenThrows(ContractError, /memoryPerGibHour: must not be negative/);
    spec(planDecider)
      .given([])
      .when(set({ perInvocationMinor: -1n }))
      .thenThrows(ContractError, /perInvocation/);
  });

  it('refuses a plan for an unknown function, and a function on the default plan', () => {
    spec(planDecider)
      .given([])
      .when(set({ functionId: 'nope' }))
      .thenThrows(DomainError, /not deployed/);
    spec(planDecider)
      .given([])
      .when(set({ planId: 'default', functionId: 'f1', functionKnown: true }))
      .thenThrows(ContractError, /default plan/);
    spec(planDecider)
      .given([])
      .when(set({ functionId: 'f1', functionKnown: true }))
      .then([{ type: 'PricePlanSet', data: { ...v1.data, functionId: 'f1' } }]);
  });

  it('picks the version in effect at a time', () => {
    const versions = [v1.data, { ...v1.data, version: 2, cpuPerCoreHour: '7', effectiveFromMs: 8000 }];
    expect(versionAt(versions, 4999)).toBeUndefined();
    expect(versionAt(versions, 5000)?.version).toBe(1);
    expect(versionAt(versions, 8000)?.version).toBe(2);
  });
});
