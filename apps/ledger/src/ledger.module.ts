import { Module, type DynamicModule } from '@nestjs/common';
import { MeshCoreModule, type MeshCore } from '@mesh/runtime';
import { LedgerController } from './ledger.controller';
import { LedgerCore } from './ledger.core';

@Module({})
export class LedgerModule {
  static forRoot(core: MeshCore): DynamicModule {
    return {
      module: LedgerModule,
      imports: [MeshCoreModule.forRoot(core)],
      controllers: [LedgerController],
      providers: [LedgerCore],
    };
  }
}
