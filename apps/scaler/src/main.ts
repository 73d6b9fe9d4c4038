import { runService, type ServiceDefinition } from '@mesh/runtime';
import { ScalerEnv } from './config';
import { ScalerModule } from './scaler.module';

export const ScalerService: ServiceDefinition<typeof ScalerEnv> = {
  service: 'scaler',
  env: ScalerEnv,
  instance: (config) => config.SCALER_INSTANCE,
  module: (core) => ScalerModule.forRoot(core),
};

if (require.main === module) void runService(ScalerService);
