import { Module, type DynamicModule } from '@nestjs/common';
import { MeshCoreModule, type MeshCore } from '@mesh/runtime';
import { LedgerController } from './ledger.controller';
import { LedgerEngine } from './ledger.engine';

@Module({})
export class LedgerModule {
  static forRoot(core: MeshCore): DynamicModule {
    return {
      module: LedgerModule,
      imports: [MeshCoreModule.forRoot(core)],
      controllers: [LedgerController],
      providers: [LedgerEngine],
    };
  }
}
