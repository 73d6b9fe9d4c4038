import { Module, type DynamicModule } from '@nestjs/common';
import { MeshCoreModule, type MeshCore } from '@mesh/messaging';

@Module({})
export class ContainerManagerModule {
  static forRoot(core: MeshCore): DynamicModule {
    return {
      module: ContainerManagerModule,
      imports: [MeshCoreModule.forRoot(core)],
      providers: [],
    };
  }
}
