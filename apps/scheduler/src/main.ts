import { runService, type ServiceDefinition } from '@mesh/messaging';
import { SchedulerEnv } from './config';
import { SchedulerModule } from './scheduler.module';

export const SchedulerService: ServiceDefinition<typeof SchedulerEnv> = {
  service: 'scheduler',
  env: SchedulerEnv,
  module: (core) => SchedulerModule.forRoot(core),
};

if (require.main === module) void runService(SchedulerService);
