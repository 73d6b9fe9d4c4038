import { Controller } from '@nestjs/common';
import { chargesQuery, pricePlansQuery, setPricePlanRequest, walletStandingQuery, type RecordedEvent, type RequestData } from '@mesh/contracts';
import { OnEvents, OnRequest } from '@mesh/runtime';
import { CreditManagerCore } from './credit-manager.core';

/**
 * Thin NATS adapters. Two durable consumers feed the reaction path directly (no batching):
 * `usage` samples become charges, `wallet` balances become standings. Requests arrive validated.
 */
@Controller()
export class CreditManagerController {
  constructor(private readonly core: CreditManagerCore) {}

  @OnEvents('usage')
  async onUsage(event: RecordedEvent): Promise<void> {
    if (event.type === 'ResourceSampled') await this.core.meter.onSample(event);
  }

  @OnEvents('wallet')
  async onWallet(event: RecordedEvent): Promise<void> {
    await this.core.standing.onWalletEvent(event);
  }

  @OnRequest(setPricePlanRequest)
  setPricePlan(body: RequestData<typeof setPricePlanRequest>) {
    return this.core.setPricePlan(body);
  }

  @OnRequest(pricePlansQuery)
  pricePlans(body: RequestData<typeof pricePlansQuery>) {
    return this.core.pricePlans(body.planId);
  }

  @OnRequest(walletStandingQuery)
  standing(body: RequestData<typeof walletStandingQuery>) {
    return this.core.walletStanding(body);
  }

  @OnRequest(chargesQuery)
  charges(body: RequestData<typeof chargesQuery>) {
    return this.core.charges(body);
  }
}
