import { Logger } from '@nestjs/common';
import { LRUCache } from '@mesh/common';
import {
  FunctionDeployed,
  GRC,
  isEvent,
  PRICE_PLAN_STREAM_PREFIX,
  parseAmount,
  parseStreamName,
  PricePlanSet,
  pricePlanStream,
  streamName,
  type FunctionSpec,
  type PricePlan,
  type RecordedEvent,
} from '@mesh/contracts';
import { handleCommand } from '@mesh/eventstore/decider';
import type { EventStore } from '@mesh/eventstore/port';
import { planEventIdOf } from './domain/event-ids';
import { DEFAULT_PLAN_ID, planDecider, versionAt, type SetPricePlan } from './domain/plan-decider';
import { pricesOf, type PlanPrices } from './domain/pricing';

/** Negative lookups remembered; beyond this the least recently used is forgotten (a miss only costs one read). */
const MISSING_MAX = 10_000;

/** Plan streams are `meter-plan_<planId>` (the meter category is the credit-manager's). */

export function isPlanStream(stream: string): boolean {
  const { category, id } = parseStreamName(stream);
  return category === 'meter' && id.startsWith(PRICE_PLAN_STREAM_PREFIX);
}

/**
 * Price plans and the functions they apply to, kept in memory: filled from the log at start, kept
 * current by this service's own plan writes and by a live subscription to `function` events, and
 * read through from the log on a miss (a function or plan created since). Which plan prices a
 * sample: the function's own `pricePlanId`, else the latest plan naming the function, else `default`.
 */
export class PricePlanView {
  private readonly log = new Logger('PricePlanView');
  private readonly plans = new Map<string, PricePlan[]>();
  private readonly functions = new Map<string, FunctionSpec>();
  /** Functions / plans looked up in the log and not found, so a sample doesn't read the log every time. */
  private readonly missingFunctions = new LRUCache<string, true>({ max: MISSING_MAX });
  private readonly missingPlans = new LRUCache<string, true>({ max: MISSING_MAX });

  constructor(private readonly store: EventStore) {}

  /** Folds one event of the log (PricePlanSet of a plan stream, FunctionDeployed); ignores the rest. */
  apply(event: RecordedEvent): void {
    if (isEvent(event, PricePlanSet)) this.addVersion(event.data);
    else if (isEvent(event, FunctionDeployed)) {
      const spec = event.data;
      this.missingFunctions.delete(spec.functionId);
      const known = this.functions.get(spec.functionId);
      if (!known || known.version <= spec.version) this.functions.set(spec.functionId, spec);
    }
  }

  /** Every plan's versions and every function known (for the snapshot: what the log made of the view). */
  *contents(): Generator<{ plan: PricePlan[] } | { spec: FunctionSpec }> {
    for (const versions of this.plans.values()) yield { plan: versions };
    for (const spec of this.functions.values()) yield { spec };
  }

  /** Adds a plan version or a function spec restored from a snapshot (folded as its event would be). */
  restore(item: { plan: PricePlan } | { spec: FunctionSpec }): void {
    if ('plan' in item) this.addVersion(item.plan);
    else {
      const known = this.functions.get(item.spec.functionId);
      if (!known || known.version <= item.spec.version) this.functions.set(item.spec.functionId, item.spec);
    }
  }

  private addVersion(plan: PricePlan): void {
    this.missingPlans.delete(plan.planId);
    const versions = this.plans.get(plan.planId) ?? [];
    if (versions.some((v) => v.version === plan.version)) return;
    versions.push(plan);
    versions.sort((a, b) => a.version - b.version);
    this.plans.set(plan.planId, versions);
  }

  /** Records `default` v1 from the configuration at the first start; later starts keep the log's. */
  async ensureDefault(config: { cpuPerCoreHour: string; memoryPerGibHour: string; billing: 'used' | 'allocated' }): Promise<void> {
    await this.loadPlan(DEFAULT_PLAN_ID);
    const existing = this.plans.get(DEFAULT_PLAN_ID);
    if (existing?.length) {
      const current = existing[existing.length - 1];
      if (current.cpuPerCoreHour !== config.cpuPerCoreHour || current.memoryPerGibHour !== config.memoryPerGibHour || current.billing !== config.billing) {
        this.log.warn(`the default plan in the log (v${current.version}) differs from DEFAULT_* variables; the log wins: use set-price-plan to change it`);
      }
      return;
    }
    await this.set({
      type: 'SetPricePlan',
      planId: DEFAULT_PLAN_ID,
      currency: GRC.code,
      billing: config.billing,
      functionKnown: false,
      cpuPerCoreHourMinor: parseAmount(config.cpuPerCoreHour, GRC, { allowZero: true, field: 'DEFAULT_CPU_PRICE_PER_CORE_HOUR' }),
      memoryPerGibHourMinor: parseAmount(config.memoryPerGibHour, GRC, { allowZero: true, field: 'DEFAULT_MEMORY_PRICE_PER_GIB_HOUR' }),
      perInvocationMinor: 0n,
      effectiveFromMs: 0,
      nowMs: Date.now(),
    });
  }

  /**
   * Re-reads every known plan stream and forgets negative lookups, so a plan version written by
   * another replica is picked up within one refresh period (this replica's own writes apply at once).
   */
  async refresh(): Promise<void> {
    this.missingPlans.clear();
    this.missingFunctions.clear();
    for (const planId of [...this.plans.keys()]) for (const e of await this.store.read(pricePlanStream(planId))) this.apply(e);
  }

  /** Decides and appends a plan version; returns the plan in force after it and whether it changed. */
  async set(command: SetPricePlan): Promise<{ plan: PricePlan; changed: boolean }> {
    const result = await handleCommand(this.store, pricePlanStream(command.planId), planDecider, command, {
      toNew: (event) => ({ id: planEventIdOf(event.data.planId, event.data.version), type: event.type, data: event.data }),
      events: [PricePlanSet],
    });
    for (const v of result.state.versions) this.addVersion(v);
    const versions = result.state.versions;
    return { plan: versions[versions.length - 1], changed: result.events.length > 0 };
  }

  /** For commands: a function not known yet is looked up in the log again (it may just have been deployed). */
  async functionKnown(functionId: string): Promise<boolean> {
    this.missingFunctions.delete(functionId);
    return (await this.functionOf(functionId)) !== undefined;
  }

  private async functionOf(functionId: string): Promise<FunctionSpec | undefined> {
    if (!this.functions.has(functionId) && !this.missingFunctions.has(functionId)) {
      for (const e of await this.store.read(streamName('function', functionId))) this.apply(e);
      if (!this.functions.has(functionId)) this.missingFunctions.set(functionId, true);
    }
    return this.functions.get(functionId);
  }

  private async loadPlan(planId: string): Promise<PricePlan[] | undefined> {
    if (!this.plans.has(planId) && !this.missingPlans.has(planId)) {
      for (const e of await this.store.read(pricePlanStream(planId))) this.apply(e);
      if (!this.plans.has(planId)) this.missingPlans.set(planId, true);
    }
    return this.plans.get(planId);
  }

  /** The plan version that prices a sample of `functionId` whose window starts at `atMs`. */
  async planFor(functionId: string, atMs: number): Promise<PlanPrices | undefined> {
    const spec = await this.functionOf(functionId);
    const candidates: string[] = [];
    if (spec?.pricePlanId) candidates.push(spec.pricePlanId);
    const named = this.planNaming(functionId);
    if (named) candidates.push(named);
    candidates.push(DEFAULT_PLAN_ID);
    for (const planId of candidates) {
      const versions = await this.loadPlan(planId);
      const version = versions && versionAt(versions, atMs);
      if (version) return pricesOf(version);
    }
    return undefined;
  }

  /** The plan most recently set for this function by `functionId` (its latest version names it). */
  private planNaming(functionId: string): string | undefined {
    let best: PricePlan | undefined;
    for (const versions of this.plans.values()) {
      const latest = versions[versions.length - 1];
      if (latest.functionId === functionId && (!best || latest.effectiveFromMs > best.effectiveFromMs)) best = latest;
    }
    return best?.planId;
  }

  list(planId?: string) {
    const nowMs = Date.now();
    const plans = [...this.plans.entries()]
      .filter(([id]) => planId === undefined || id === planId)
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([id, versions]) => ({ planId: id, current: versionAt(versions, nowMs) ?? null, versions }));
    return plans;
  }

  /** The plan in effect now of each known function that `visible` keeps (default: every one), by function id. */
  async functionPlans(visible: (fn: FunctionSpec) => boolean = () => true): Promise<{ functionId: string; planId: string; planVersion: number }[]> {
    const nowMs = Date.now();
    const rows: { functionId: string; planId: string; planVersion: number }[] = [];
    const shown = [...this.functions.values()].filter(visible).map((fn) => fn.functionId);
    for (const functionId of shown.sort()) {
      const plan = await this.planFor(functionId, nowMs);
      if (plan) rows.push({ functionId, planId: plan.planId, planVersion: plan.version });
    }
    return rows;
  }
}
