import { Inject, Injectable, Logger, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';
import { messageOf } from '@mesh/common';
import {
  currencyOf,
  formatAmount,
  FunctionDeployed,
  GRC,
  isEvent,
  parseAmount,
  PricePlanSet,
  StandingChanged,
  streamName,
  UsageAnomalyRecorded,
  UsageCharged,
  type EventData,
  type ReplyData,
  type RequestData,
  type chargesQuery,
  type setPricePlanRequest,
  type walletStandingQuery,
} from '@mesh/contracts';
import type { commonEnv, ConfigOf } from '@mesh/config';
import { readAllPaged, type EventStore, type Subscription } from '@mesh/eventstore/port';
import { EVENT_STORE, SERVICE_CONFIG } from '@mesh/runtime';
import type { CreditManagerEnv } from './config';
import { MeterHandler } from './meter.handler';
import { isPlanStream, PricePlanView } from './price-plan.view';
import { StandingHandler } from './standing.handler';

export type CreditManagerConfig = ConfigOf<typeof CreditManagerEnv & typeof commonEnv>;

const DEFAULT_LIMIT = 100;

/**
 * The credit-manager's state and lifecycle: the price plan view (filled from the log at start, then
 * following `function` events live), the meter handler (samples -> charges) and the standing handler
 * (ledger balances -> standing). Controllers stay thin and call in here.
 */
@Injectable()
export class CreditManagerEngine implements OnModuleInit, OnModuleDestroy {
  private readonly log = new Logger('CreditManager');
  readonly plans: PricePlanView;
  readonly meter: MeterHandler;
  readonly standing: StandingHandler;
  private functionSubscription?: Subscription;
  private refreshTimer?: NodeJS.Timeout;
  private refreshing?: Promise<void>;

  constructor(
    @Inject(EVENT_STORE) readonly store: EventStore,
    @Inject(SERVICE_CONFIG) readonly config: CreditManagerConfig,
  ) {
    this.plans = new PricePlanView(store);
    this.meter = new MeterHandler(store, this.plans, config.DEFAULT_PROVIDER_WALLET, {
      metersMax: config.CREDIT_METER_CACHE_MAX,
      tasksMax: config.CREDIT_TASK_INDEX_MAX,
    });
    this.standing = new StandingHandler(store, config.CREDIT_WALLET_CACHE_MAX);
  }

  async onModuleInit(): Promise<void> {
    // Plans, functions and the task -> container index from the whole log, then functions live.
    let position = 0n;
    for await (const event of readAllPaged(this.store, 1n, 5000)) {
      position = event.position;
      if (isEvent(event, FunctionDeployed) || (isEvent(event, PricePlanSet) && isPlanStream(event.stream))) this.plans.apply(event);
      else if (isEvent(event, UsageCharged)) this.meter.indexTask(event.data.taskId, event.data.containerId);
    }
    this.functionSubscription = this.store.subscribe({ after: position, categories: ['function'] }, (event) => this.plans.apply(event));
    this.functionSubscription.done.catch((err) => this.log.error(`function subscription stopped: ${messageOf(err)}`));
    await this.plans.ensureDefault({
      cpuPerCoreHour: this.config.DEFAULT_CPU_PRICE_PER_CORE_HOUR,
      memoryPerGibHour: this.config.DEFAULT_MEMORY_PRICE_PER_GIB_HOUR,
      billing: this.config.DEFAULT_BILLING,
    });
    this.startPlanRefresh();
  }

  async onModuleDestroy(): Promise<void> {
    if (this.refreshTimer) clearInterval(this.refreshTimer);
    await this.refreshing;
    await this.functionSubscription?.stop();
  }

  /** Background refresh of the plans (never in the reaction path); one at a time. */
  private startPlanRefresh(): void {
    if (this.config.CREDIT_PLAN_REFRESH_MS === 0) return;
    this.refreshTimer = setInterval(() => {
      if (this.refreshing) return;
      this.refreshing = this.plans
        .refresh()
        .catch((err) => this.log.warn(`plan refresh failed: ${messageOf(err)}`))
        .finally(() => (this.refreshing = undefined));
    }, this.config.CREDIT_PLAN_REFRESH_MS);
    this.refreshTimer.unref();
  }

  // --- commands --------------------------------------------------------------------------------------
  async setPricePlan(body: RequestData<typeof setPricePlanRequest>): Promise<ReplyData<typeof setPricePlanRequest>> {
    const currency = currencyOf(body.currency ?? GRC.code);
    const minor = (value: string | undefined, field: string) => parseAmount(value ?? '0', currency, { allowZero: true, field });
    return this.plans.set({
      type: 'SetPricePlan',
      planId: body.planId,
      currency: currency.code,
      cpuPerCoreHourMinor: minor(body.cpuPerCoreHour, 'cpuPerCoreHour'),
      memoryPerGibHourMinor: minor(body.memoryPerGibHour, 'memoryPerGibHour'),
      perInvocationMinor: minor(body.perInvocation, 'perInvocation'),
      billing: body.billing ?? 'used',
      functionId: body.functionId,
      functionKnown: body.functionId !== undefined && (await this.plans.functionKnown(body.functionId)),
      effectiveFromMs: body.effectiveFromMs,
      nowMs: Date.now(),
    });
  }

  // --- queries ---------------------------------------------------------------------------------------
  async pricePlans(planId?: string) {
    return { plans: this.plans.list(planId), functions: await this.plans.functionPlans() };
  }

  async walletStanding(body: RequestData<typeof walletStandingQuery>): Promise<ReplyData<typeof walletStandingQuery>> {
    const events = (await this.store.read(streamName('standing', body.walletId))).filter((e) => isEvent(e, StandingChanged));
    const last = events.at(-1)?.data;
    const history = events.slice(-(body.limit ?? DEFAULT_LIMIT)).map((e) => ({ ...e.data, revision: e.revision, eventId: e.id }));
    return { walletId: body.walletId, standing: last?.to ?? null, balance: last?.balance ?? null, changes: events.length, history };
  }

  async charges(body: RequestData<typeof chargesQuery>): Promise<ReplyData<typeof chargesQuery>> {
    const containers = body.containerId ? [body.containerId] : this.meter.containersOfTask(body.taskId!);
    const charges: EventData<typeof UsageCharged>[] = [];
    const anomalies: EventData<typeof UsageAnomalyRecorded>[] = [];
    for (const containerId of containers) {
      for (const e of await this.store.read(streamName('meter', containerId))) {
        if (isEvent(e, UsageCharged)) charges.push(e.data);
        else if (isEvent(e, UsageAnomalyRecorded)) anomalies.push(e.data);
      }
    }
    const mine = body.taskId ? charges.filter((c) => c.taskId === body.taskId) : charges;
    const currencyCode = mine[0]?.currency ?? GRC.code;
    const currency = currencyOf(currencyCode);
    let amount = 0n;
    let cpuNanos = 0n;
    let memoryByteMs = 0n;
    for (const c of mine) {
      amount += parseAmount(c.amount, currency, { allowZero: true });
      cpuNanos += BigInt(c.cpuNanos);
      memoryByteMs += BigInt(c.memoryByteMs);
    }
    const sampleIds = new Set(mine.map((c) => c.sampleId));
    const myAnomalies = body.taskId ? anomalies.filter((a) => sampleIds.has(a.sampleId)) : anomalies;
    const line = (c: EventData<typeof UsageCharged>) => ({
      chargeId: c.chargeId,
      containerId: c.containerId,
      walletId: c.walletId,
      functionId: c.functionId,
      ...(c.taskId ? { taskId: c.taskId } : {}),
      sampleId: c.sampleId,
      sampleSeq: c.sampleSeq,
      windowStartMs: c.windowStartMs,
      windowEndMs: c.windowEndMs,
      cpuNanos: c.cpuNanos,
      memoryByteMs: c.memoryByteMs,
      planId: c.planId,
      planVersion: c.planVersion,
      amount: c.amount,
      remainder: c.remainder,
    });
    const limit = body.limit ?? DEFAULT_LIMIT;
    return {
      ...(body.containerId ? { containerId: body.containerId } : {}),
      ...(body.taskId ? { taskId: body.taskId } : {}),
      currency: currencyCode,
      totals: {
        amount: formatAmount(amount, currency),
        cpuNanos: cpuNanos.toString(),
        memoryByteMs: memoryByteMs.toString(),
        charges: mine.length,
        anomalies: myAnomalies.length,
      },
      charges: mine.slice(-limit).map(line),
      anomalies: myAnomalies.slice(-limit).map((a) => ({ sampleId: a.sampleId, sampleSeq: a.sampleSeq, reason: a.reason, detail: a.detail })),
    };
  }
}
