import { runService, type ServiceDefinition } from '@mesh/runtime';
import { ContainerManagerEnv } from './config';
import { ContainerManagerModule } from './container-manager.module';
import { runningEngines } from './container-manager.engine';

export { readExecutionOutput, type ExecutionOutput, type OutputManifest } from './storage/object-io';

export const ContainerManagerService: ServiceDefinition<typeof ContainerManagerEnv> = {
  service: 'container-manager',
  env: ContainerManagerEnv,
  module: (core) => ContainerManagerModule.forRoot(core),
  healthDetails: async () => [...runningEngines].at(-1)?.health() ?? {},
  // One container-manager per node: each node has its own durable consumers.
  consumerPrefix: (config) => `container-manager_${config.NODE_ID}`,
};

if (require.main === module) void runService(ContainerManagerService);
