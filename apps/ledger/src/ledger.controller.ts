import { Controller } from '@nestjs/common';
import { Ctx, Payload } from '@nestjs/microservices';
import { KeyedMutex } from '@mesh/common';
import {
  ForbiddenError,
  GRC,
  assertOperator,
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
import { OnEvents, OnRequest, type NatsRequestContext } from '@mesh/runtime';
import { assertMaxDebtWithinCeiling, assertTenantMayOpen, assertWalletLimit } from './access';
import { LedgerEngine } from './ledger.engine';
import type { WalletResult } from './wallet.handler';

type Referenced = RequestData<typeof depositRequest>;

/**
 * Thin NATS handlers: requests arrive validated against their schemas (transport), amounts become
 * bigint in the wallet's currency, the wallet handler decides and appends, the reply says what was
 * written. Refusals throw ContractError/DomainError and write nothing. `ctx.caller` (from the
 * subject) is checked before anything else: tenants act on their own wallets only (access.ts).
 */
@Controller()
export class LedgerController {
  /** Opens of one tenant run one at a time, so two at once cannot both pass its wallet limit. */
  private readonly tenantOpens = new KeyedMutex();

  constructor(private readonly engine: LedgerEngine) {}

  // --- charges -------------------------------------------------------------------------------------
  // Charges are independent and the wallet handler serialises per wallet, so 128 may be in flight:
  // charges of different users overlap while each wallet still sees its postings in order. Each
  // charge takes two round trips one after the other (the debit, then the credit derived from it),
  // so twice as many are kept in hand as when both sides were written at once. In a partitioned log
  // the replicas share the charges by meter stream (docs/cluster.md "Partitions"); two replicas that
  // post to one wallet at once are ordered by the wallet's expected version (a conflict reloads).
  @OnEvents('meter', { concurrency: 128, partitioned: true })
  onMeter(event: RecordedEvent): Promise<void> {
    return this.engine.onMeterEvent(event);
  }

  // --- commands ------------------------------------------------------------------------------------
  @OnRequest(openWalletRequest)
  async openWallet(@Payload() body: RequestData<typeof openWalletRequest>, @Ctx() ctx: NatsRequestContext): Promise<ReplyData<typeof openWalletRequest>> {
    const caller = ctx.caller;
    const currency = currencyOf(body.currency ?? GRC.code);
    const kind = body.kind ?? 'user';
    const config = this.engine.config;
    const money = (value: string | undefined, fallback: string, field: string) => parseAmount(value ?? fallback, currency, { allowZero: true, field });
    const maxDebt = money(body.maxDebt, kind === 'provider' ? '0' : config.LEDGER_DEFAULT_MAX_DEBT, 'maxDebt');
    const minBalance = money(body.minBalance, kind === 'provider' ? '0' : config.LEDGER_DEFAULT_MIN_BALANCE, 'minBalance');
    assertTenantMayOpen(caller, config, kind, maxDebt, currency.code);
    const open = async () => {
      const existing = await this.engine.wallets.state(body.walletId);
      // Another owner's wallet: forbidden, nothing more said; the owner's own: wallet_exists, as for the operator.
      if (existing.opened && caller.kind === 'tenant' && existing.tenantId !== caller.tenantId)
        throw ForbiddenError.of(caller, 'open', `wallet ${body.walletId}`);
      if (!existing.opened) assertWalletLimit(this.engine.projection, caller, config);
      const opened = await this.engine.wallets.execute({
        type: 'OpenWallet',
        walletId: body.walletId,
        kind,
        currency: currency.code,
        maxDebt,
        minBalance,
        policy: body.policy ?? 'greedy',
        atMs: Date.now(),
        ...(caller.kind === 'tenant' ? { tenantId: caller.tenantId } : {}),
      });
      // The limit counts from the projection: the next open of this tenant waits until it shows this one.
      if (caller.kind === 'tenant' && opened.position !== undefined) await this.engine.whenProjected(opened.position);
      return opened;
    };
    const result = caller.kind === 'tenant' ? await this.tenantOpens.run(caller.tenantId, open) : await open();
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

  // Money movements are the operator's (NATS refuses them on tenant subjects too: not `access: 'tenant'`).
  @OnRequest(depositRequest)
  async deposit(@Payload() body: Referenced, @Ctx() ctx: NatsRequestContext): Promise<ReplyData<typeof depositRequest>> {
    assertOperator(ctx.caller, 'deposit to', `wallet ${body.walletId}`);
    return this.referenced('Deposit', 'deposit', body);
  }

  @OnRequest(withdrawRequest)
  async withdraw(@Payload() body: RequestData<typeof withdrawRequest>, @Ctx() ctx: NatsRequestContext): Promise<ReplyData<typeof withdrawRequest>> {
    assertOperator(ctx.caller, 'withdraw from', `wallet ${body.walletId}`);
    return this.referenced('Withdraw', 'withdrawal', body);
  }

  @OnRequest(adjustRequest)
  async adjust(@Payload() body: RequestData<typeof adjustRequest>, @Ctx() ctx: NatsRequestContext): Promise<ReplyData<typeof adjustRequest>> {
    assertOperator(ctx.caller, 'adjust', `wallet ${body.walletId}`);
    return this.referenced('Adjust', 'adjustment', body, body.reason);
  }

  @OnRequest(setPolicyRequest)
  async setPolicy(@Payload() body: RequestData<typeof setPolicyRequest>, @Ctx() ctx: NatsRequestContext): Promise<ReplyData<typeof setPolicyRequest>> {
    const caller = ctx.caller;
    const state = await this.engine.wallets.state(body.walletId);
    // The owner as the write side knows it (the projection may lag a wallet just opened); an unknown wallet is not a tenant's.
    if (caller.kind === 'tenant' && (!state.opened || state.tenantId !== caller.tenantId))
      throw ForbiddenError.of(caller, 'change the policy of', `wallet ${body.walletId}`);
    const currency = currencyOf(state.opened ? state.currency : GRC.code);
    const money = (value: string | undefined, field: string) => (value === undefined ? undefined : parseAmount(value, currency, { allowZero: true, field }));
    const maxDebt = money(body.maxDebt, 'maxDebt');
    if (maxDebt !== undefined) assertMaxDebtWithinCeiling(caller, this.engine.config, maxDebt, currency, 'set-policy', state.maxDebt);
    const result = await this.engine.wallets.execute({
      type: 'ChangePolicy',
      walletId: body.walletId,
      maxDebt,
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

  // --- queries: through engine.reads, which checks that the caller may see what it names --------------
  @OnRequest(balanceRequest)
  balance(@Payload() body: RequestData<typeof balanceRequest>, @Ctx() ctx: NatsRequestContext) {
    return this.engine.reads.balance(ctx.caller, body.walletId);
  }

  @OnRequest(statementRequest)
  statement(@Payload() body: RequestData<typeof statementRequest>, @Ctx() ctx: NatsRequestContext) {
    return this.engine.reads.statement(ctx.caller, body.walletId, body.limit, body.afterRevision);
  }

  @OnRequest(taskCostRequest)
  taskCost(@Payload() body: RequestData<typeof taskCostRequest>, @Ctx() ctx: NatsRequestContext) {
    return this.engine.reads.taskCost(ctx.caller, body.taskId);
  }

  @OnRequest(containerCostRequest)
  containerCost(@Payload() body: RequestData<typeof containerCostRequest>, @Ctx() ctx: NatsRequestContext) {
    return this.engine.reads.containerCost(ctx.caller, body.containerId);
  }

  @OnRequest(providerEarningsRequest)
  providerEarnings(@Payload() body: RequestData<typeof providerEarningsRequest>, @Ctx() ctx: NatsRequestContext) {
    return this.engine.reads.providerEarnings(ctx.caller, body.walletId);
  }

  @OnRequest(totalsRequest)
  totals(@Payload() _body: unknown, @Ctx() ctx: NatsRequestContext) {
    return this.engine.reads.totals(ctx.caller);
  }

  @OnRequest(auditRequest)
  audit(@Payload() _body: unknown, @Ctx() ctx: NatsRequestContext) {
    return this.engine.reads.audit(ctx.caller);
  }
}
