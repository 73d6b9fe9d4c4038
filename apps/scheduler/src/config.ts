import { env } from '@mesh/config';

/** Variables of the scheduler service (in addition to the common ones in libs/config). */
export const SchedulerEnv = {
  SCHEDULER_INSTANCE: env.id('Instance name of this scheduler (for logs and health)', 'scheduler'),
};
