import { Inject, Injectable, Logger, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';
import { verifyAudit } from '@mesh/audit';
import { messageOf } from '@mesh/common';
import {
  ContractError,
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
import { readAllPaged, type EventStore, type Subscription } from '@mesh/eventstore/port';
import { EVENT_STORE, SERVICE_CONFIG } from '@mesh/runtime';
import type { LedgerEnv } from './config';
import type { WalletState } from './domain/wallet';
import { startLedgerHttpServer, type LedgerHttpServer } from './http/http-server';
import { LedgerProjection } from './projection/ledger-projection';
import { LedgerQueries } from './projection/queries';
import { WalletHandler } from './wallet.handler';

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
  private subscription?: Subscription;
  private http?: LedgerHttpServer;

  constructor(
    @Inject(EVENT_STORE) readonly store: EventStore,
    @Inject(SERVICE_CONFIG) readonly config: LedgerConfig,
  ) {
    this.wallets = new WalletHandler(store, config.LEDGER_WALLET_CACHE_MAX);
    this.queries = new LedgerQueries(this.projection, store);
  }

  async onModuleInit(): Promise<void> {
    // Rebuild from the whole log, then follow wallet events live from where the rebuild ended.
    for await (const event of readAllPaged(this.store, 1n, 10_000)) this.projection.apply(event);
    this.subscription = this.store.subscribe({ after: this.projection.position, categories: ['wallet'] }, (event) => this.projection.apply(event));
    this.subscription.done.catch((err) => this.log.error(`projection subscription stopped: ${messageOf(err)}`));
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
    if (this.config.LEDGER_HTTP_PORT > 0) {
      this.http = await startLedgerHttpServer(this.queries, () => this.audit(), { host: this.config.LEDGER_HTTP_HOST, port: this.config.LEDGER_HTTP_PORT });
      this.log.log(`HTTP projections on http://${this.config.LEDGER_HTTP_HOST}:${this.http.port}`);
    }
  }

  async onModuleDestroy(): Promise<void> {
    await this.http?.close();
    await this.subscription?.stop();
  }

  audit(): Promise<AuditReport> {
    return verifyAudit(this.store, this.projection);
  }

  /**
   * Posts one charge on both sides: debit the user, credit the provider. Both wallets are checked
   * first so a charge that can't be posted writes neither side; then the two appends run at the
   * same time (different streams). The credit joins the provider's next group-committed
   * UsageCredited (WalletHandler.credit). Each side is idempotent by the charge ids in the wallet's
   * state (and the debit also by its event id), so a crash between them heals when the charge is
   * delivered again.
   */
  async postCharge(charge: Charge): Promise<{ debited: boolean; credited: boolean }> {
    const currency = currencyOf(charge.currency);
    const amount = parseAmount(charge.amount, currency, { allowZero: true, field: 'amount' });
    if (amount === 0n) return { debited: false, credited: false };
    if (charge.walletId === charge.providerWalletId) throw ContractError.single('UsageCharged', 'providerWalletId', 'must differ from walletId');
    const [user, provider] = await Promise.all([this.wallets.state(charge.walletId), this.wallets.state(charge.providerWalletId)]);
    checkSide(user, charge.walletId, 'user', charge);
    checkSide(provider, charge.providerWalletId, 'provider', charge);
    const links = { containerId: charge.containerId, functionId: charge.functionId, ...(charge.taskId ? { taskId: charge.taskId } : {}) };
    const [debit, credited] = await Promise.all([
      this.wallets.execute({
        type: 'PostDebit',
        walletId: charge.walletId,
        chargeId: charge.chargeId,
        amount,
        currency: currency.code,
        providerWalletId: charge.providerWalletId,
        ...links,
      }),
      this.wallets.credit(charge.providerWalletId, currency.code, { chargeId: charge.chargeId, amount, userWalletId: charge.walletId, ...links }),
    ]);
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

function checkSide(state: WalletState, walletId: string, kind: 'user' | 'provider', charge: Charge): void {
  // Thrown errors nak the charge; after CONSUMER_MAX_DELIVERIES it is dead-lettered (and visible).
  if (!state.opened) throw new Error(`charge ${charge.chargeId}: ${kind} wallet ${walletId} does not exist`);
  if (state.kind !== kind) throw new Error(`charge ${charge.chargeId}: wallet ${walletId} is a ${state.kind} wallet, not a ${kind} wallet`);
  if (state.currency !== charge.currency)
    throw new Error(`charge ${charge.chargeId}: wallet ${walletId} holds ${state.currency}, the charge is in ${charge.currency}`);
}
