import { runService, type ServiceDefinition } from '@mesh/runtime';
import { CreditManagerEnv } from './config';
import { CreditManagerModule } from './credit-manager.module';

export const CreditManagerService: ServiceDefinition<typeof CreditManagerEnv> = {
  service: 'credit-manager',
  env: CreditManagerEnv,
  instance: (config) => config.CREDIT_MANAGER_INSTANCE,
  module: (core) => CreditManagerModule.forRoot(core),
};

if (require.main === module) void runService(CreditManagerService);
