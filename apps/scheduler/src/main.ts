import { runService, type ServiceDefinition } from '@mesh/runtime';
import { SchedulerEnv } from './config';
import { SchedulerModule } from './scheduler.module';
import { runningEngines } from './scheduler.engine';

export const SchedulerService: ServiceDefinition<typeof SchedulerEnv> = {
  service: 'scheduler',
  env: SchedulerEnv,
  instance: (config) => config.SCHEDULER_INSTANCE,
  module: (core) => SchedulerModule.forRoot(core),
  healthDetails: async () => [...runningEngines][0]?.health() ?? { status: 'degraded', details: { view: 'catching up' } },
};

if (require.main === module) void runService(SchedulerService);
