import { Inject, Injectable, Logger, Optional, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';
import type { NatsConnection } from 'nats';
import { verifyAudit } from '@mesh/audit';
import { ensureHttpTokenKey } from '@mesh/audit/http-token';
import type { MacKeyRing } from '@mesh/audit/mac';
import { ensureMacKeyRing } from '@mesh/audit/mac-key-file';
import { messageOf } from '@mesh/common';
import {
  ContractError,
  DomainError,
  currencyOf,
  formatAmount,
  isEvent,
  parseAmount,
  UsageCharged,
  type AuditReport,
  type EventData,
  type RecordedEvent,
} from '@mesh/contracts';
import type { commonEnv, ConfigOf } from '@mesh/config';
import type { EventStore, Subscription } from '@mesh/eventstore/port';
import { KvSnapshotStore, SnapshotSchedule, type SnapshotStore } from '@mesh/eventstore/snapshot-store';
import { ALWAYS_LEADER, EVENT_STORE, LEADERSHIP, NATS_CONNECTION, SERVICE_CONFIG, type Leadership } from '@mesh/runtime';
import { LedgerReads } from './access';
import type { LedgerEnv } from './config';
import { UncreditedDebits, type OwedCredit } from './domain/uncredited-debits';
import { startLedgerHttpServer, type LedgerHttpServer } from './http/http-server';
import { LedgerProjection } from './projection/ledger-projection';
import { encodeLedgerSnapshot, loadLedgerState } from './projection/ledger-snapshot';
import { LedgerQueries } from './projection/queries';
import { WalletHandler, type WalletFacts } from './wallet.handler';

export type LedgerConfig = ConfigOf<typeof LedgerEnv & typeof commonEnv>;

/** The fields of a UsageCharged the ledger posts. */
export type Charge = Pick<
  EventData<typeof UsageCharged>,
  'chargeId' | 'walletId' | 'providerWalletId' | 'containerId' | 'functionId' | 'taskId' | 'currency' | 'amount'
>;

/**
 * The ledger's state and lifecycle: the wallet handler (write side), the projection rebuilt from the
 * log at start and kept current by a subscription (read side), the default provider wallet, and
 * the HTTP server. Controllers stay thin and call in here.
 */
@Injectable()
export class LedgerEngine implements OnModuleInit, OnModuleDestroy {
  private readonly log = new Logger('Ledger');
  readonly wallets: WalletHandler;
  readonly projection = new LedgerProjection();
  readonly queries: LedgerQueries;
  /** The queries as a caller may see them (ownership checked): the NATS handlers and the HTTP server answer through it. */
  readonly reads: LedgerReads;
  /** Whole-log audits running now (at most LEDGER_AUDIT_CONCURRENCY_MAX). */
  private auditsRunning = 0;
  /** Callers waiting for the projection to fold a position (whenProjected). */
  private readonly positionWaiters = new Set<{ position: bigint; resolve: (reached: boolean) => void }>();
  /** Debits without their credit, kept current live so that a snapshot carries them (an old uncredited debit is found after a restart from it). */
  private uncredited = new UncreditedDebits();
  private readonly snapshots?: SnapshotStore;
  private readonly snapshotSchedule: SnapshotSchedule;
  private subscription?: Subscription;
  private http?: LedgerHttpServer;
  /** The periodic sweep of debits without their credit (LEDGER_CREDIT_SWEEP_INTERVAL_MS). */
  private sweepTimer?: NodeJS.Timeout;
  private sweepRunning?: Promise<number>;
  /** Charge ids seen without a credit by the last sweep: one still owed at the next sweep is credited then. */
  private owedAtLastSweep = new Set<string>();
  /** Sweeps finished since start (tests wait on it). */
  sweeps = 0;
  /** The MAC keys (loaded or created at start): every wallet event written is MAC'd, every wallet loaded is checked. */
  macKeys?: MacKeyRing;

  constructor(
    @Inject(EVENT_STORE) readonly store: EventStore,
    @Inject(SERVICE_CONFIG) readonly config: LedgerConfig,
    // Optional: a ledger built without NATS (specs over the in-memory store) keeps no snapshots.
    @Optional() @Inject(NATS_CONNECTION) nc?: NatsConnection,
    /** Replicas: only the leader sweeps (crediting is idempotent, so a second sweeper would only conflict). */
    @Optional() @Inject(LEADERSHIP) private readonly leadership: Leadership = ALWAYS_LEADER,
  ) {
    this.wallets = new WalletHandler(store, config.LEDGER_WALLET_CACHE_MAX);
    this.queries = new LedgerQueries(this.projection, store);
    this.reads = new LedgerReads(this.projection, this.queries, () => this.audit());
    this.snapshots = nc ? new KvSnapshotStore(nc) : undefined;
    this.snapshotSchedule = new SnapshotSchedule(config.LEDGER_SNAPSHOT_EVERY_EVENTS, config.LEDGER_SNAPSHOT_EVERY_MS);
  }

  /** The KV key of this ledger's snapshot. */
  get snapshotKey(): string {
    return `ledger.${this.config.LEDGER_INSTANCE}.projection`;
  }

  async onModuleInit(): Promise<void> {
    // The key first: nothing is written before every write can be MAC'd.
    await this.loadMacKeys();
    // Load the snapshot (if usable) and replay the log after it, then follow wallet events live from
    // where the replay ended. The same pass finds the debits whose credit was never written (a crash
    // between the two); the snapshot carries the ones older than its position.
    const startedAtMs = Date.now();
    const state = await loadLedgerState(this.store, this.config.LEDGER_SNAPSHOT_LOAD === 'on' ? this.snapshots : undefined, this.snapshotKey, this.log);
    this.projection.replaceWith(state.projection);
    this.uncredited = state.uncredited;
    this.log.log(
      `projection at position ${this.projection.position} in ${Date.now() - startedAtMs} ms: ${state.from === 'snapshot' ? `snapshot at ${state.snapshotPosition} + ${state.replayed} events after it` : `${state.replayed} events replayed from the start`}`,
    );
    this.subscription = this.store.subscribe({ after: this.projection.position, categories: ['wallet'] }, (event) => this.onLiveEvent(event));
    this.subscription.done.catch((err) => this.log.error(`projection subscription stopped: ${messageOf(err)}`));
    // A long replay is worth a snapshot at once, so the next start does not repeat it.
    this.snapshotSchedule.folded(state.replayed);
    this.maybeSnapshot();
    const providerStartMs = Date.now();
    // Opened already (the projection, caught up to the log, holds it): not loaded now. Loading it
    // reads its whole stream (every credit ever), which grows with the log; the first charge (or an
    // owed credit below) loads it instead, so the start stays flat.
    if (!this.projection.wallets.has(this.config.DEFAULT_PROVIDER_WALLET))
      await this.wallets.execute({
        type: 'OpenWallet',
        walletId: this.config.DEFAULT_PROVIDER_WALLET,
        kind: 'provider',
        currency: 'GRC',
        maxDebt: 0n,
        minBalance: 0n,
        policy: 'greedy',
        atMs: Date.now(),
        ifMissing: true,
      });
    const owedStartMs = Date.now();
    await this.creditOwed(this.uncredited.list(), 'at start');
    this.startSweep();
    // Where a start's time goes (the provider wallet's load grows with its own stream, not the log's).
    this.log.log(
      `start-up: projection ${providerStartMs - startedAtMs} ms, provider wallet ${owedStartMs - providerStartMs} ms, owed credits ${Date.now() - owedStartMs} ms`,
    );
    if (this.config.LEDGER_HTTP_PORT > 0) {
      const keyFile = this.config.LEDGER_HTTP_TOKEN_KEY_FILE;
      const { key, created } = await ensureHttpTokenKey(keyFile);
      if (created) this.log.log(`HTTP token key created in ${keyFile}`);
      this.http = await startLedgerHttpServer(this.reads, {
        host: this.config.LEDGER_HTTP_HOST,
        port: this.config.LEDGER_HTTP_PORT,
        tokenKey: key,
        allowedHosts: this.config.LEDGER_HTTP_ALLOWED_HOSTS,
      });
      this.log.log(`HTTP projections on http://${this.config.LEDGER_HTTP_HOST}:${this.http.port} (bearer tokens from ${keyFile}: mesh ledger token)`);
    }
  }

  async onModuleDestroy(): Promise<void> {
    clearInterval(this.sweepTimer);
    this.sweepTimer = undefined;
    await this.sweepRunning;
    await this.http?.close();
    await this.subscription?.stop();
    await this.snapshotSchedule.inFlight;
    for (const waiter of this.positionWaiters) waiter.resolve(false);
    this.positionWaiters.clear();
  }

  /**
   * Resolves true once the projection has folded `position` (a command's append), false after
   * `timeoutMs` (the projection is behind: the caller goes on without it rather than hang).
   */
  whenProjected(position: bigint, timeoutMs = 5_000): Promise<boolean> {
    if (this.projection.position >= position) return Promise.resolve(true);
    return new Promise((resolve) => {
      const waiter = {
        position,
        resolve: (reached: boolean) => {
          clearTimeout(timer);
          this.positionWaiters.delete(waiter);
          resolve(reached);
        },
      };
      const timer = setTimeout(() => waiter.resolve(false), timeoutMs);
      this.positionWaiters.add(waiter);
    });
  }

  private onLiveEvent(event: RecordedEvent): void {
    this.projection.apply(event);
    for (const waiter of this.positionWaiters) if (this.projection.position >= waiter.position) waiter.resolve(true);
    this.uncredited.observe(event);
    this.snapshotSchedule.folded();
    this.maybeSnapshot();
  }

  /**
   * Writes a snapshot when one is due. The state is encoded synchronously (one consistent cut at the
   * projection's position, as no event is folded meanwhile); the KV writes then run in the background.
   */
  private maybeSnapshot(): void {
    if (!this.snapshots || !this.snapshotSchedule.due()) return;
    void this.snapshotSchedule.run(() => this.writeSnapshot());
  }

  /** Writes a snapshot of the projection and the uncredited debits now (also used by tests and the bench). */
  async writeSnapshot(): Promise<void> {
    if (!this.snapshots) return;
    try {
      const encoded = encodeLedgerSnapshot(this.projection, this.uncredited);
      const manifest = await this.snapshots.save(this.snapshotKey, encoded);
      this.log.log(
        `snapshot ${this.snapshotKey} at position ${manifest.position}: ${manifest.records} records, ${manifest.bytes} bytes in ${manifest.chunks} chunks`,
      );
    } catch (err) {
      this.log.warn(`snapshot ${this.snapshotKey} not written (the next one is tried later): ${messageOf(err)}`);
    }
  }

  /**
   * Replays the whole log (verifyAudit). At most LEDGER_AUDIT_CONCURRENCY_MAX run at once: each holds
   * every charge id of the log in memory and competes with posting for the CPU, so one more is
   * refused at once as `busy` rather than queued behind them.
   */
  async audit(): Promise<AuditReport> {
    const max = this.config.LEDGER_AUDIT_CONCURRENCY_MAX;
    if (this.auditsRunning >= max) {
      throw new DomainError(
        'busy',
        `busy: ${this.auditsRunning} audit(s) already running (LEDGER_AUDIT_CONCURRENCY_MAX=${max}); try again when it has finished`,
      );
    }
    this.auditsRunning++;
    try {
      return await verifyAudit(this.store, this.projection, { macKeys: this.macKeys, creditGraceMs: this.config.LEDGER_AUDIT_CREDIT_GRACE_MS });
    } finally {
      this.auditsRunning--;
    }
  }

  /** Loads the MAC key file (LEDGER_MAC_KEY_FILE), creating it with a new key when missing. Logs key ids only, never a secret. */
  private async loadMacKeys(): Promise<void> {
    const path = this.config.LEDGER_MAC_KEY_FILE;
    const { ring, created } = await ensureMacKeyRing(path, () => this.store.headPosition());
    this.macKeys = ring;
    this.wallets.useMacKeys(ring);
    if (created) this.log.log(`MAC key ${ring.activeKeyId} created in ${path} (wallet events after log position ${ring.macRequiredAfter} must carry a MAC)`);
    else this.log.log(`MAC keys from ${path}: active ${ring.activeKeyId}, ${ring.list().length} in all`);
  }

  /**
   * Writes the credit of each debit found without one (a crash or a dead-lettered charge between
   * the debit and its credit). The user wallet is loaded first, which checks its seals: a forged
   * debit (no valid MAC) is never credited. Crediting is idempotent (a charge already credited is
   * left out), so a charge redelivered meanwhile cannot be credited twice. A failure is logged and
   * left for the next start or the charge's redelivery; it does not stop the ledger.
   */
  async creditOwed(owed: OwedCredit[], when: string): Promise<number> {
    if (owed.length === 0) return 0;
    const results = await Promise.allSettled(owed.map((debit) => this.creditDebit(debit)));
    const failed = results.flatMap((r, i) => (r.status === 'rejected' ? [`${owed[i].stream}@${owed[i].revision}: ${messageOf(r.reason)}`] : []));
    const credited = results.filter((r) => r.status === 'fulfilled' && r.value).length;
    this.log.log(`${owed.length} debit(s) found without their credit ${when}: ${credited} credited now`);
    if (failed.length > 0) this.log.error(`${failed.length} debit(s) still without their credit: ${failed.slice(0, 5).join('; ')}`);
    return credited;
  }

  private startSweep(): void {
    const intervalMs = this.config.LEDGER_CREDIT_SWEEP_INTERVAL_MS ?? 0;
    if (intervalMs <= 0) return;
    this.sweepTimer = setInterval(() => {
      if (this.sweepRunning || !this.leadership.isLeader) return; // one sweep at a time: a slow one is not stacked
      this.sweepRunning = this.sweepOwed()
        .catch((err: unknown) => {
          this.log.error(`credit sweep failed (tried again next interval): ${messageOf(err)}`);
          return 0;
        })
        .finally(() => {
          this.sweepRunning = undefined;
          this.sweeps++;
        });
    }, intervalMs);
    this.sweepTimer.unref();
  }

  /**
   * One sweep while running: credits the debits that were already without their credit at the
   * previous sweep (so at least one interval old: a charge being posted right now is left to its
   * own credit). Without it such a debit (a crash of the credit's write, a dead-lettered charge)
   * would wait for the next start or the charge's redelivery. Crediting is idempotent, so a credit
   * written meanwhile makes it a no-op.
   */
  async sweepOwed(): Promise<number> {
    const owed = this.uncredited.list();
    const due = owed.filter((debit) => this.owedAtLastSweep.has(debit.chargeId));
    this.owedAtLastSweep = new Set(owed.map((debit) => debit.chargeId));
    return this.creditOwed(due, 'for a whole sweep interval');
  }

  private async creditDebit(debit: OwedCredit): Promise<boolean> {
    const user = await this.wallets.state(debit.userWalletId); // checks the stream's seals (a forged debit fails here)
    if (!user.charges.has(debit.chargeId)) throw new Error(`charge ${debit.chargeId}: its debit is not in wallet ${debit.userWalletId} as loaded`);
    const currency = currencyOf(debit.currency);
    const links = { containerId: debit.containerId, functionId: debit.functionId, ...(debit.taskId ? { taskId: debit.taskId } : {}) };
    return this.wallets.credit(debit.providerWalletId, currency.code, {
      chargeId: debit.chargeId,
      amount: parseAmount(debit.amount, currency, { field: 'amount' }),
      userWalletId: debit.userWalletId,
      ...links,
    });
  }

  /**
   * Posts one charge on both sides, debit first: both wallets are checked (a charge that can't be
   * posted writes neither side), the user is debited, and only once the debit is stored is the
   * provider credited (joining the provider's next group-committed UsageCredited,
   * WalletHandler.credit). So the log never holds a credit without its debit, and a debit without
   * its credit (a crash or a failure between the two) is completed by the charge's redelivery (the
   * debit is then a no-op) or by the scan at the next start (creditOwed). Both sides are idempotent
   * by the charge ids in the wallet's state (and the debit also by its event id).
   */
  async postCharge(charge: Charge): Promise<{ debited: boolean; credited: boolean }> {
    const currency = currencyOf(charge.currency);
    const amount = parseAmount(charge.amount, currency, { allowZero: true, field: 'amount' });
    if (amount === 0n) return { debited: false, credited: false };
    if (charge.walletId === charge.providerWalletId) throw ContractError.single('UsageCharged', 'providerWalletId', 'must differ from walletId');
    const [user, provider] = await Promise.all([this.wallets.facts(charge.walletId), this.wallets.facts(charge.providerWalletId)]);
    checkSide(user, charge.walletId, 'user', charge);
    checkSide(provider, charge.providerWalletId, 'provider', charge);
    const links = { containerId: charge.containerId, functionId: charge.functionId, ...(charge.taskId ? { taskId: charge.taskId } : {}) };
    const debit = await this.wallets.execute({
      type: 'PostDebit',
      walletId: charge.walletId,
      chargeId: charge.chargeId,
      amount,
      currency: currency.code,
      providerWalletId: charge.providerWalletId,
      ...links,
    });
    const credited = await this.wallets.credit(charge.providerWalletId, currency.code, {
      chargeId: charge.chargeId,
      amount,
      userWalletId: charge.walletId,
      ...links,
    });
    return { debited: debit.events.length > 0, credited };
  }

  /** Handles one meter event: UsageCharged is posted, every other meter event type is ignored. */
  async onMeterEvent(event: RecordedEvent): Promise<void> {
    if (!isEvent(event, UsageCharged)) return;
    await this.postCharge(event.data);
  }

  formatMoney(amount: bigint, currency: string): string {
    return formatAmount(amount, currencyOf(currency));
  }
}

function checkSide(state: WalletFacts, walletId: string, kind: 'user' | 'provider', charge: Charge): void {
  // Thrown errors nak the charge; after the retry window it is parked as a dead letter (visible, replayable).
  if (!state.opened) throw new Error(`charge ${charge.chargeId}: ${kind} wallet ${walletId} does not exist`);
  if (state.kind !== kind) throw new Error(`charge ${charge.chargeId}: wallet ${walletId} is a ${state.kind} wallet, not a ${kind} wallet`);
  if (state.currency !== charge.currency)
    throw new Error(`charge ${charge.chargeId}: wallet ${walletId} holds ${state.currency}, the charge is in ${charge.currency}`);
}
