import { Controller } from '@nestjs/common';
import {
  GRC,
  adjustRequest,
  auditRequest,
  balanceRequest,
  containerCostRequest,
  currencyOf,
  depositRequest,
  formatAmount,
  openWalletRequest,
  parseAmount,
  providerEarningsRequest,
  setPolicyRequest,
  statementRequest,
  taskCostRequest,
  totalsRequest,
  withdrawRequest,
  type RecordedEvent,
  type ReplyData,
  type RequestData,
} from '@mesh/contracts';
import { OnEvents, OnRequest } from '@mesh/runtime';
import { LedgerEngine } from './ledger.engine';
import type { WalletResult } from './wallet.handler';

type Referenced = RequestData<typeof depositRequest>;

/**
 * Thin NATS handlers: requests arrive validated against their schemas (transport), amounts become
 * bigint in the wallet's currency, the wallet handler decides and appends, the reply says what was
 * written. Refusals throw ContractError/DomainError and write nothing.
 */
@Controller()
export class LedgerController {
  constructor(private readonly engine: LedgerEngine) {}

  // --- charges -------------------------------------------------------------------------------------
  // Charges are independent and the wallet handler serialises per wallet, so 128 may be in flight:
  // charges of different users overlap while each wallet still sees its postings in order. Each
  // charge takes two round trips one after the other (the debit, then the credit derived from it),
  // so twice as many are kept in hand as when both sides were written at once.
  @OnEvents('meter', { concurrency: 128 })
  onMeter(event: RecordedEvent): Promise<void> {
    return this.engine.onMeterEvent(event);
  }

  // --- commands ------------------------------------------------------------------------------------
  @OnRequest(openWalletRequest)
  async openWallet(body: RequestData<typeof openWalletRequest>): Promise<ReplyData<typeof openWalletRequest>> {
    const currency = currencyOf(body.currency ?? GRC.code);
    const kind = body.kind ?? 'user';
    const config = this.engine.config;
    const money = (value: string | undefined, fallback: string, field: string) => parseAmount(value ?? fallback, currency, { allowZero: true, field });
    const result = await this.engine.wallets.execute({
      type: 'OpenWallet',
      walletId: body.walletId,
      kind,
      currency: currency.code,
      maxDebt: money(body.maxDebt, kind === 'provider' ? '0' : config.LEDGER_DEFAULT_MAX_DEBT, 'maxDebt'),
      minBalance: money(body.minBalance, kind === 'provider' ? '0' : config.LEDGER_DEFAULT_MIN_BALANCE, 'minBalance'),
      policy: body.policy ?? 'greedy',
      atMs: Date.now(),
    });
    const s = result.state;
    return {
      walletId: s.walletId,
      kind: s.kind,
      currency: s.currency,
      balance: formatAmount(s.balance, currency),
      maxDebt: formatAmount(s.maxDebt, currency),
      minBalance: formatAmount(s.minBalance, currency),
      policy: s.policy,
      eventId: result.events[0].id,
      revision: s.revision,
      position: (result.position ?? 0n).toString(),
    };
  }

  @OnRequest(depositRequest)
  deposit(body: Referenced): Promise<ReplyData<typeof depositRequest>> {
    return this.referenced('Deposit', 'deposit', body);
  }

  @OnRequest(withdrawRequest)
  withdraw(body: RequestData<typeof withdrawRequest>): Promise<ReplyData<typeof withdrawRequest>> {
    return this.referenced('Withdraw', 'withdrawal', body);
  }

  @OnRequest(adjustRequest)
  async adjust(body: RequestData<typeof adjustRequest>): Promise<ReplyData<typeof adjustRequest>> {
    return this.referenced('Adjust', 'adjustment', body, body.reason);
  }

  @OnRequest(setPolicyRequest)
  async setPolicy(body: RequestData<typeof setPolicyRequest>): Promise<ReplyData<typeof setPolicyRequest>> {
    const state = await this.engine.wallets.state(body.walletId);
    const currency = currencyOf(state.opened ? state.currency : GRC.code);
    const money = (value: string | undefined, field: string) => (value === undefined ? undefined : parseAmount(value, currency, { allowZero: true, field }));
    const result = await this.engine.wallets.execute({
      type: 'ChangePolicy',
      walletId: body.walletId,
      maxDebt: money(body.maxDebt, 'maxDebt'),
      minBalance: money(body.minBalance, 'minBalance'),
      policy: body.policy,
    });
    const s = result.state;
    return {
      walletId: s.walletId,
      maxDebt: formatAmount(s.maxDebt, currency),
      minBalance: formatAmount(s.minBalance, currency),
      policy: s.policy,
      changed: result.events.length > 0,
      revision: s.revision,
    };
  }

  private async referenced(type: 'Deposit' | 'Withdraw' | 'Adjust', kind: 'deposit' | 'withdrawal' | 'adjustment', body: Referenced, reason?: string) {
    // The amount is parsed in the wallet's currency (its exponent); the schema already checked GRC's rules.
    const state = await this.engine.wallets.state(body.walletId);
    const currency = currencyOf(state.opened ? state.currency : GRC.code);
    const amount = parseAmount(body.amount, currency, { allowNegative: type === 'Adjust' });
    const command =
      type === 'Adjust'
        ? { type, walletId: body.walletId, amount, reference: body.reference, currency: body.currency, reason: reason! }
        : { type, walletId: body.walletId, amount, reference: body.reference, currency: body.currency };
    const result: WalletResult = await this.engine.wallets.execute(command);
    if (result.events.length > 0) {
      const s = result.state;
      return {
        walletId: s.walletId,
        eventId: result.events[0].id,
        amount: formatAmount(amount, currency),
        balance: formatAmount(s.balance, currency),
        revision: s.revision,
        duplicate: false,
      };
    }
    // Idempotent repeat: the original posting's result.
    const original = result.state.references.get(`${kind}:${body.reference}`)!;
    return {
      walletId: body.walletId,
      eventId: original.eventId,
      amount: formatAmount(original.amount, currency),
      balance: formatAmount(original.balanceAfter, currency),
      revision: original.revision,
      duplicate: true,
    };
  }

  // --- queries -------------------------------------------------------------------------------------
  @OnRequest(balanceRequest)
  balance(body: RequestData<typeof balanceRequest>) {
    return this.engine.queries.balance(body.walletId);
  }

  @OnRequest(statementRequest)
  statement(body: RequestData<typeof statementRequest>) {
    return this.engine.queries.statement(body.walletId, body.limit, body.afterRevision);
  }

  @OnRequest(taskCostRequest)
  taskCost(body: RequestData<typeof taskCostRequest>) {
    return this.engine.queries.taskCost(body.taskId);
  }

  @OnRequest(containerCostRequest)
  containerCost(body: RequestData<typeof containerCostRequest>) {
    return this.engine.queries.containerCost(body.containerId);
  }

  @OnRequest(providerEarningsRequest)
  providerEarnings(body: RequestData<typeof providerEarningsRequest>) {
    return this.engine.queries.providerEarnings(body.walletId);
  }

  @OnRequest(totalsRequest)
  totals() {
    return this.engine.queries.totals();
  }

  @OnRequest(auditRequest)
  audit() {
    return this.engine.audit();
  }
}
