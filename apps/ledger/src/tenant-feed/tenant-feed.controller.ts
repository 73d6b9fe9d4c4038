import { Controller } from '@nestjs/common';
import { Ctx, Payload } from '@nestjs/microservices';
import type { RecordedEvent } from '@mesh/contracts';
import { OnEvents, type EventConsumerOptions, type JetStreamContext } from '@mesh/runtime';
import { TenantFeed } from './tenant-feed';

/**
 * One durable consumer per category that holds tenants' events (`ledger_<category>_tenantfeed`;
 * their positions are in the ledger's health). In log order (one event at a time per category), so
 * a tenant sees each stream's events in revision order. Created at the current end of the log
 * (`deliver: 'new'`): the feed is live; history is read with queries. From then on the durable
 * consumer resumes where it stopped, so nothing written while the ledger was down is skipped.
 */
const FEED: EventConsumerOptions = { name: 'tenantfeed', deliver: 'new' };

@Controller()
export class TenantFeedController {
  constructor(private readonly feed: TenantFeed) {}

  @OnEvents('wallet', FEED)
  onWallet(@Payload() event: RecordedEvent, @Ctx() ctx: JetStreamContext): Promise<void> {
    return this.feed.republish(event, ctx.message);
  }

  @OnEvents('function', FEED)
  onFunction(@Payload() event: RecordedEvent, @Ctx() ctx: JetStreamContext): Promise<void> {
    return this.feed.republish(event, ctx.message);
  }

  @OnEvents('task', FEED)
  onTask(@Payload() event: RecordedEvent, @Ctx() ctx: JetStreamContext): Promise<void> {
    return this.feed.republish(event, ctx.message);
  }

  @OnEvents('execution', FEED)
  onExecution(@Payload() event: RecordedEvent, @Ctx() ctx: JetStreamContext): Promise<void> {
    return this.feed.republish(event, ctx.message);
  }

  @OnEvents('container', FEED)
  onContainer(@Payload() event: RecordedEvent, @Ctx() ctx: JetStreamContext): Promise<void> {
    return this.feed.republish(event, ctx.message);
  }

  @OnEvents('usage', FEED)
  onUsage(@Payload() event: RecordedEvent, @Ctx() ctx: JetStreamContext): Promise<void> {
    return this.feed.republish(event, ctx.message);
  }

  @OnEvents('scaling', FEED)
  onScaling(@Payload() event: RecordedEvent, @Ctx() ctx: JetStreamContext): Promise<void> {
    return this.feed.republish(event, ctx.message);
  }

  @OnEvents('meter', FEED)
  onMeter(@Payload() event: RecordedEvent, @Ctx() ctx: JetStreamContext): Promise<void> {
    return this.feed.republish(event, ctx.message);
  }

  @OnEvents('standing', FEED)
  onStanding(@Payload() event: RecordedEvent, @Ctx() ctx: JetStreamContext): Promise<void> {
    return this.feed.republish(event, ctx.message);
  }
}
