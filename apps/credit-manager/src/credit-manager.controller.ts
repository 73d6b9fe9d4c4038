import { Controller } from '@nestjs/common';
import { Ctx, Payload } from '@nestjs/microservices';
import {
  assertOperator,
  chargesQuery,
  isEvent,
  isEventOf,
  pricePlansQuery,
  ResourceSampled,
  setPricePlanRequest,
  WalletOpened,
  walletEvents,
  walletStandingQuery,
  type RecordedEvent,
  type RequestData,
} from '@mesh/contracts';
import { OnEvents, OnRequest, type NatsRequestContext } from '@mesh/runtime';
import { CreditManagerEngine } from './credit-manager.engine';

/**
 * Thin NATS adapters. Two durable consumers feed the reaction path directly (no batching):
 * `usage` samples become charges, `wallet` balances become standings. Requests arrive validated,
 * with their caller (`ctx.caller`, from the subject): set-price-plan is the operator's; a tenant
 * reads the plans and its own wallets' standing and charges (domain/access.ts). With `@Ctx()` on a
 * parameter Nest fills only decorated parameters, hence `@Payload()` on the body.
 */
@Controller()
export class CreditManagerController {
  constructor(private readonly engine: CreditManagerEngine) {}

  // Partitioned by container (docs/cluster.md "Partitions"): each replica charges the samples of its partitions.
  @OnEvents('usage', { partitioned: true })
  async onUsage(event: RecordedEvent): Promise<void> {
    if (isEvent(event, ResourceSampled)) await this.engine.meter.onSample(event);
  }

  /** Every event of the category is a wallet event (the store validates each append against the catalog). */
  @OnEvents('wallet')
  async onWallet(event: RecordedEvent): Promise<void> {
    if (!isEventOf(event, walletEvents)) return;
    if (isEvent(event, WalletOpened)) this.engine.walletOwners.remember(event.data);
    await this.engine.standing.onWalletEvent(event);
  }

  @OnRequest(setPricePlanRequest)
  setPricePlan(@Payload() body: RequestData<typeof setPricePlanRequest>, @Ctx() ctx: NatsRequestContext) {
    // Defence in depth: NATS permissions and the transport already keep tenants off this subject.
    assertOperator(ctx.caller, 'set', `price plan ${body.planId}: price plans are set by the operator`);
    return this.engine.setPricePlan(body);
  }

  @OnRequest(pricePlansQuery)
  pricePlans(@Payload() body: RequestData<typeof pricePlansQuery>, @Ctx() ctx: NatsRequestContext) {
    return this.engine.pricePlans(body.planId, ctx.caller);
  }

  @OnRequest(walletStandingQuery)
  standing(@Payload() body: RequestData<typeof walletStandingQuery>, @Ctx() ctx: NatsRequestContext) {
    return this.engine.walletStanding(body, ctx.caller);
  }

  @OnRequest(chargesQuery)
  charges(@Payload() body: RequestData<typeof chargesQuery>, @Ctx() ctx: NatsRequestContext) {
    return this.engine.charges(body, ctx.caller);
  }
}
