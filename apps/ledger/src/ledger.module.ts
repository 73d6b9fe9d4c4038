import { Module, type DynamicModule } from '@nestjs/common';
import { MeshCoreModule, type MeshCore } from '@mesh/runtime';
import { LedgerController } from './ledger.controller';
import { LedgerEngine } from './ledger.engine';
import { TenantFeedModule } from './tenant-feed/tenant-feed.module';

@Module({})
export class LedgerModule {
  static forRoot(core: MeshCore): DynamicModule {
    return {
      module: LedgerModule,
      imports: [MeshCoreModule.forRoot(core), TenantFeedModule],
      controllers: [LedgerController],
      providers: [LedgerEngine],
    };
  }
}
