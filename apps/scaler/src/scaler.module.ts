import { Module, type DynamicModule } from '@nestjs/common';
import { MeshCoreModule, type MeshCore } from '@mesh/messaging';

@Module({})
export class ScalerModule {
  static forRoot(core: MeshCore): DynamicModule {
    return {
      module: ScalerModule,
      imports: [MeshCoreModule.forRoot(core)],
      providers: [],
    };
  }
}
