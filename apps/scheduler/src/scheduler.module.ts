import { Module, type DynamicModule } from '@nestjs/common';
import { MeshCoreModule, type MeshCore } from '@mesh/runtime';
import { SchedulerController } from './scheduler.controller';
import { SchedulerEngine } from './scheduler.engine';

@Module({})
export class SchedulerModule {
  static forRoot(core: MeshCore): DynamicModule {
    return {
      module: SchedulerModule,
      imports: [MeshCoreModule.forRoot(core)],
      controllers: [SchedulerController],
      providers: [SchedulerEngine],
    };
  }
}
