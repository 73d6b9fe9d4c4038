import { env } from '@mesh/config';

/** Variables of the scaler service (in addition to the common ones in libs/config). */
export const ScalerEnv = {
  SCALER_INSTANCE: env.id('Instance name of this scaler (for logs and health)', 'scaler'),
};
