import { Module, type DynamicModule } from '@nestjs/common';
import { MeshCoreModule, type MeshCore } from '@mesh/messaging';

@Module({})
export class LedgerModule {
  static forRoot(core: MeshCore): DynamicModule {
    return {
      module: LedgerModule,
      imports: [MeshCoreModule.forRoot(core)],
      providers: [],
    };
  }
}
