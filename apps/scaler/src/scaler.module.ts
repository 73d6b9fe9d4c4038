import { Module, type DynamicModule } from '@nestjs/common';
import { MeshCoreModule, type MeshCore } from '@mesh/runtime';
import type { ConfigOf } from '@mesh/config';
import { policyFromConfig } from './domain/scaling-policy';
import { ScalerEnv } from './config';
import { HeartbeatListener, ScalerController } from './scaler.controller';
import { SCALER_LIMITS, SCALING_POLICY, ScalerEngine, type ScalerLimits } from './scaler.engine';

@Module({})
export class ScalerModule {
  static forRoot(core: MeshCore): DynamicModule {
    const config = core.config as ConfigOf<typeof ScalerEnv>;
    const limits: ScalerLimits = { containersMax: config.SCALER_CONTAINERS_MAX, heartbeatMaxAgeMs: config.HEARTBEAT_MAX_AGE_MS };
    return {
      module: ScalerModule,
      imports: [MeshCoreModule.forRoot(core)],
      controllers: [ScalerController],
      providers: [
        // Checked here so a contradictory configuration stops the service at start-up.
        { provide: SCALING_POLICY, useValue: policyFromConfig(config) },
        { provide: SCALER_LIMITS, useValue: limits },
        ScalerEngine,
        HeartbeatListener,
      ],
    };
  }
}
