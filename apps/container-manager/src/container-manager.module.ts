import { Module, type DynamicModule } from '@nestjs/common';
import { MeshCoreModule, type MeshCore } from '@mesh/runtime';
import { ContainerManagerEngine } from './container-manager.engine';
import { ContainerManagerController } from './container-manager.controller';

@Module({})
export class ContainerManagerModule {
  static forRoot(core: MeshCore): DynamicModule {
    return {
      module: ContainerManagerModule,
      imports: [MeshCoreModule.forRoot(core)],
      controllers: [ContainerManagerController],
      providers: [ContainerManagerEngine],
      exports: [ContainerManagerEngine],
    };
  }
}
