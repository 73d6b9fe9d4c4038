import { Inject, Injectable, Logger, Optional, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';
import type { NatsConnection } from 'nats';
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
  type Caller,
  type EventData,
  type RecordedEvent,
  type ReplyData,
  type RequestData,
  type chargesQuery,
  type setPricePlanRequest,
  type walletStandingQuery,
} from '@mesh/contracts';
import type { commonEnv, ConfigOf } from '@mesh/config';
import { readAllPaged, type EventStore, type Subscription } from '@mesh/eventstore/port';
import { KvSnapshotStore, SnapshotSchedule, type SnapshotStore } from '@mesh/eventstore/snapshot-store';
import { EVENT_STORE, NATS_CONNECTION, SERVICE_CONFIG, WalletOwners } from '@mesh/runtime';
import type { CreditManagerEnv } from './config';
import { encodeCreditSnapshot, restoreCreditState } from './credit-snapshot';
import { assertMayReadStanding, functionVisible, visibleCharges, walletsShown } from './domain/access';
import { MeterHandler } from './meter.handler';
import { isPlanStream, PricePlanView } from './price-plan.view';
import { StandingHandler } from './standing.handler';

export type CreditManagerConfig = ConfigOf<typeof CreditManagerEnv & typeof commonEnv>;

const DEFAULT_LIMIT = 100;

/**
 * The credit-manager's state and lifecycle: the price plan view and the task index (restored from
 * the snapshot and the log after it, or the whole log without one; then following `function` and
 * `meter` events live, so what a snapshot holds is what the log made of them), the meter handler
 * (samples -> charges) and the standing handler (ledger balances -> standing). Controllers stay
 * thin and call in here.
 */
@Injectable()
export class CreditManagerEngine implements OnModuleInit, OnModuleDestroy {
  private readonly log = new Logger('CreditManager');
  readonly plans: PricePlanView;
  readonly meter: MeterHandler;
  readonly standing: StandingHandler;
  /** Who owns each wallet (a tenant reads only its own wallets' standing and charges); fed by the wallet consumer. */
  readonly walletOwners: WalletOwners;
  private functionSubscription?: Subscription;
  private meterSubscription?: Subscription;
  private refreshTimer?: NodeJS.Timeout;
  private refreshing?: Promise<void>;
  private readonly snapshots?: SnapshotStore;
  private readonly snapshotSchedule: SnapshotSchedule;

  constructor(
    @Inject(EVENT_STORE) readonly store: EventStore,
    @Inject(SERVICE_CONFIG) readonly config: CreditManagerConfig,
    // Optional: an engine built without NATS (specs over the in-memory store) keeps no snapshots.
    @Optional() @Inject(NATS_CONNECTION) nc?: NatsConnection,
  ) {
    this.snapshots = nc ? new KvSnapshotStore(nc) : undefined;
    this.snapshotSchedule = new SnapshotSchedule(config.CREDIT_SNAPSHOT_EVERY_EVENTS, config.CREDIT_SNAPSHOT_EVERY_MS);
    this.plans = new PricePlanView(store);
    this.meter = new MeterHandler(store, this.plans, config.DEFAULT_PROVIDER_WALLET, {
      metersMax: config.CREDIT_METER_CACHE_MAX,
      tasksMax: config.CREDIT_TASK_INDEX_MAX,
    });
    this.standing = new StandingHandler(store, config.CREDIT_WALLET_CACHE_MAX);
    this.walletOwners = new WalletOwners(store, config.CREDIT_WALLET_CACHE_MAX);
  }

  /** The KV key of this credit-manager's snapshot. */
  get snapshotKey(): string {
    return `credit-manager.${this.config.CREDIT_MANAGER_INSTANCE}.plans`;
  }

  async onModuleInit(): Promise<void> {
    // Plans, functions and the task -> container index from the snapshot and the log after it (the
    // whole log without a usable snapshot), then function and meter events live.
    const startedAtMs = Date.now();
    const snapshots = this.config.CREDIT_SNAPSHOT_LOAD === 'on' ? this.snapshots : undefined;
    const snapshotPosition = await restoreCreditState(snapshots, this.snapshotKey, this.plans, this.meter, this.log);
    let position = snapshotPosition;
    let replayed = 0;
    for await (const event of readAllPaged(this.store, snapshotPosition + 1n, 5000)) {
      position = event.position;
      this.fold(event);
      replayed++;
    }
    this.log.log(
      `plans and task index at position ${position} in ${Date.now() - startedAtMs} ms: ${snapshotPosition > 0n ? `snapshot at ${snapshotPosition} + ${replayed} events after it` : `${replayed} events replayed from the start`}`,
    );
    const follow = (category: string) => {
      const subscription = this.store.subscribe({ after: position, categories: [category] }, (event) => this.onLiveEvent(event));
      subscription.done.catch((err) => this.log.error(`${category} subscription stopped: ${messageOf(err)}`));
      return subscription;
    };
    this.functionSubscription = follow('function');
    this.meterSubscription = follow('meter');
    // A long replay is worth a snapshot at once, so the next start does not repeat it.
    this.snapshotSchedule.folded(replayed);
    if (this.snapshots && this.snapshotSchedule.due()) void this.snapshotSchedule.run(() => this.writeSnapshot());
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
    await this.meterSubscription?.stop();
    await this.snapshotSchedule.inFlight;
  }

  /** What the start-up replay and the live subscriptions fold: plan versions, function specs, the task index. */
  private fold(event: RecordedEvent): void {
    if (isEvent(event, FunctionDeployed) || (isEvent(event, PricePlanSet) && isPlanStream(event.stream))) this.plans.apply(event);
    else if (isEvent(event, UsageCharged)) this.meter.indexTask(event.data.taskId, event.data.containerId);
  }

  private onLiveEvent(event: RecordedEvent): void {
    this.fold(event);
    this.snapshotSchedule.folded();
    if (this.snapshots && this.snapshotSchedule.due()) void this.snapshotSchedule.run(() => this.writeSnapshot());
  }

  /**
   * Writes a snapshot now, at the lower of the two subscriptions' positions: what the other one
   * folded beyond it is folded again after a restart, which changes nothing (every fold is
   * idempotent). Encoded synchronously (one consistent cut); a failure is logged.
   */
  async writeSnapshot(): Promise<void> {
    if (!this.snapshots || !this.functionSubscription || !this.meterSubscription) return;
    const f = this.functionSubscription.position;
    const m = this.meterSubscription.position;
    try {
      const manifest = await this.snapshots.save(this.snapshotKey, encodeCreditSnapshot(f < m ? f : m, this.plans, this.meter));
      this.log.log(
        `snapshot ${this.snapshotKey} at position ${manifest.position}: ${manifest.records} records, ${manifest.bytes} bytes in ${manifest.chunks} chunks`,
      );
    } catch (err) {
      this.log.warn(`snapshot ${this.snapshotKey} not written (the next one is tried later): ${messageOf(err)}`);
    }
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
  /** Every plan (plans are public); the function rows only of the functions `caller` may see. */
  async pricePlans(planId: string | undefined, caller: Caller) {
    return { plans: this.plans.list(planId), functions: await this.plans.functionPlans((fn) => functionVisible(caller, fn)) };
  }

  /** The owner of each wallet (undefined: not opened). */
  private async ownersOf(walletIds: readonly string[]): Promise<Map<string, string | undefined>> {
    const owners = await Promise.all(walletIds.map((walletId) => this.walletOwners.lookup(walletId)));
    return new Map(walletIds.map((walletId, i) => [walletId, owners[i]?.owner]));
  }

  async walletStanding(body: RequestData<typeof walletStandingQuery>, caller: Caller): Promise<ReplyData<typeof walletStandingQuery>> {
    if (caller.kind === 'tenant') assertMayReadStanding(caller, body.walletId, (await this.walletOwners.lookup(body.walletId))?.owner);
    const events = (await this.store.read(streamName('standing', body.walletId))).filter((e) => isEvent(e, StandingChanged));
    const last = events.at(-1)?.data;
    const history = events.slice(-(body.limit ?? DEFAULT_LIMIT)).map((e) => ({ ...e.data, revision: e.revision, eventId: e.id }));
    return { walletId: body.walletId, standing: last?.to ?? null, balance: last?.balance ?? null, changes: events.length, history };
  }

  async charges(body: RequestData<typeof chargesQuery>, caller: Caller): Promise<ReplyData<typeof chargesQuery>> {
    const containers = body.containerId ? [body.containerId] : this.meter.containersOfTask(body.taskId!);
    const charges: EventData<typeof UsageCharged>[] = [];
    const anomalies: EventData<typeof UsageAnomalyRecorded>[] = [];
    for (const containerId of containers) {
      for (const e of await this.store.read(streamName('meter', containerId))) {
        if (isEvent(e, UsageCharged)) charges.push(e.data);
        else if (isEvent(e, UsageAnomalyRecorded)) anomalies.push(e.data);
      }
    }
    const ofTask = body.taskId ? charges.filter((c) => c.taskId === body.taskId) : charges;
    const sampleIds = new Set(ofTask.map((c) => c.sampleId));
    const shown = { charges: ofTask, anomalies: body.taskId ? anomalies.filter((a) => sampleIds.has(a.sampleId)) : anomalies };
    const owners = caller.kind === 'tenant' ? await this.ownersOf(walletsShown(shown.charges, shown.anomalies)) : new Map<string, string>();
    const { charges: mine, anomalies: myAnomalies } = visibleCharges(caller, shown, owners);
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
