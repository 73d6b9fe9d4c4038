import { Module } from '@nestjs/common';
import { TenantFeedController } from './tenant-feed.controller';
import { TenantFeed } from './tenant-feed';

/** The tenant feed (docs/ledger.md, "Tenant feed"): imported by the LedgerModule. Uses the global MeshCoreModule's connection and store. */
@Module({ controllers: [TenantFeedController], providers: [TenantFeed], exports: [TenantFeed] })
export class TenantFeedModule {}
