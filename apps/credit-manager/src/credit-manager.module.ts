import { Module, type DynamicModule } from '@nestjs/common';
import { MeshCoreModule, type MeshCore } from '@mesh/messaging';

@Module({})
export class CreditManagerModule {
  static forRoot(core: MeshCore): DynamicModule {
    return {
      module: CreditManagerModule,
      imports: [MeshCoreModule.forRoot(core)],
      providers: [],
    };
  }
}
