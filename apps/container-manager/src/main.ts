import { runService, type ServiceDefinition } from '@mesh/messaging';
import { ContainerManagerEnv } from './config';
import { ContainerManagerModule } from './container-manager.module';

export const ContainerManagerService: ServiceDefinition<typeof ContainerManagerEnv> = {
  service: 'container-manager',
  env: ContainerManagerEnv,
  module: (core) => ContainerManagerModule.forRoot(core),
};

if (require.main === module) void runService(ContainerManagerService);
