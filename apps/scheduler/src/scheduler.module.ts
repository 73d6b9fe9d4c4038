import { Module, type DynamicModule } from '@nestjs/common';
import { MeshCoreModule, type MeshCore } from '@mesh/runtime';
import { SchedulerController } from './scheduler.controller';
import { SchedulerEngine } from './scheduler.engine';
import { FunctionHandler } from './function.handler';
import { StorageGuard } from './storage.guard';
import { TaskHandler } from './task.handler';
import { TaskObjects } from './task-objects';

@Module({})
export class SchedulerModule {
  static forRoot(core: MeshCore): DynamicModule {
    return {
      module: SchedulerModule,
      imports: [MeshCoreModule.forRoot(core)],
      controllers: [SchedulerController],
      providers: [TaskHandler, FunctionHandler, SchedulerEngine, StorageGuard, TaskObjects],
    };
  }
}
