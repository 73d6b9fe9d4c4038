import { Module, type DynamicModule } from '@nestjs/common';
import { MeshCoreModule, type MeshCore } from '@mesh/messaging';

@Module({})
export class SchedulerModule {
  static forRoot(core: MeshCore): DynamicModule {
    return {
      module: SchedulerModule,
      imports: [MeshCoreModule.forRoot(core)],
      providers: [],
    };
  }
}
