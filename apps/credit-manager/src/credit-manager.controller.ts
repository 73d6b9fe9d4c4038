import { Controller } from '@nestjs/common';
import {
  chargesQuery,
  isEvent,
  isEventOf,
  pricePlansQuery,
  ResourceSampled,
  setPricePlanRequest,
  walletEvents,
  walletStandingQuery,
  type RecordedEvent,
  type RequestData,
} from '@mesh/contracts';
import { OnEvents, OnRequest } from '@mesh/runtime';
import { CreditManagerEngine } from './credit-manager.engine';

/**
 * Thin NATS adapters. Two durable consumers feed the reaction path directly (no batching):
 * `usage` samples become charges, `wallet` balances become standings. Requests arrive validated.
 */
@Controller()
export class CreditManagerController {
  constructor(private readonly engine: CreditManagerEngine) {}

  @OnEvents('usage')
  async onUsage(event: RecordedEvent): Promise<void> {
    if (isEvent(event, ResourceSampled)) await this.engine.meter.onSample(event);
  }

  /** Every event of the category is a wallet event (the store validates each append against the catalog). */
  @OnEvents('wallet')
  async onWallet(event: RecordedEvent): Promise<void> {
    if (isEventOf(event, walletEvents)) await this.engine.standing.onWalletEvent(event);
  }

  @OnRequest(setPricePlanRequest)
  setPricePlan(body: RequestData<typeof setPricePlanRequest>) {
    return this.engine.setPricePlan(body);
  }

  @OnRequest(pricePlansQuery)
  pricePlans(body: RequestData<typeof pricePlansQuery>) {
    return this.engine.pricePlans(body.planId);
  }

  @OnRequest(walletStandingQuery)
  standing(body: RequestData<typeof walletStandingQuery>) {
    return this.engine.walletStanding(body);
  }

  @OnRequest(chargesQuery)
  charges(body: RequestData<typeof chargesQuery>) {
    return this.engine.charges(body);
  }
}
