import { env } from '@mesh/config';

const MiB = 1024 * 1024;

/** Variables of the scaler service (in addition to the common ones in libs/config). */
export const ScalerEnv = {
  SCALER_INSTANCE: env.id('Instance name of this scaler (for logs and health)', 'scaler'),
  THROTTLE_CAP_MILLIS: env.int('CPU cap (millicores) of every container of an overdrawn or suspended wallet', 500, 1, 1_024_000, ' millicores'),
  SCALE_BOUNDARY_MILLIS: env.int(
    'Boundary (millicores): scale up above allocation - boundary, down below allocation - 2 x boundary to usage + 1.5 x boundary',
    250,
    10,
    64_000,
    ' millicores',
  ),
  SCALE_UP_SAMPLES: env.int('Consecutive samples above allocation - boundary before a scale-up', 2, 1, 64),
  SCALE_DOWN_SAMPLES: env.int('Consecutive samples below allocation - 2 x boundary before a scale-down', 6, 1, 64),
  SCALE_UP_GAIN: env.int(
    'Scale-up amount = gain x how far the mean usage is above allocation - boundary (4: a saturated container gets 4 x boundary more)',
    4,
    1,
    64,
  ),
  WINDOW_SAMPLES: env.int('Samples kept per container (bounded window; must cover SCALE_UP_SAMPLES and SCALE_DOWN_SAMPLES)', 16, 2, 64),
  SAMPLE_MAX_AGE_MS: env.int('Samples whose window ended longer ago than this decide nothing (history replay, lagging consumer)', 3000, 100, 600_000, ' ms'),
  DECISION_TIMEOUT_MS: env.int('A decision not applied (no ContainerResized) within this time may be replaced by a new one', 5000, 100, 600_000, ' ms'),
  MEMORY_HIGH_WATERMARK_PCT: env.int('Raise the memory limit when the peak usage of a sample is above this percentage of it', 90, 50, 99, '%'),
  MEMORY_TARGET_PCT: env.int('A new memory limit puts the peak usage at this percentage of it', 70, 10, 95, '%'),
  MEMORY_LOW_WATERMARK_PCT: env.int('Lower the memory limit after MEMORY_DOWN_SAMPLES samples with peak below this percentage of it', 50, 5, 90, '%'),
  MEMORY_DOWN_SAMPLES: env.int('Consecutive low-memory samples before the memory limit is lowered', 30, 1, 10_000),
  MEMORY_DOWN_STEP_PCT: env.int('At most this percentage of the memory limit is removed per memory-down decision', 10, 1, 50, '%'),
  MEMORY_MIN_BYTES: env.int('The scaler never lowers a memory limit below this', 64 * MiB, MiB, 1024 * 1024 * MiB, ' bytes'),
  MEMORY_MAX_BYTES: env.int('The scaler never raises a memory limit above this', 16 * 1024 * MiB, MiB, 4 * 1024 * 1024 * MiB, ' bytes'),
  HEARTBEAT_MAX_AGE_MS: env.int('A node heartbeat older than this no longer counts for free capacity', 5000, 100, 600_000, ' ms'),
  SCALER_CONTAINERS_MAX: env.int('Containers tracked in memory at most (bounds memory; the oldest stopped ids are forgotten first)', 10_000, 10, 1_000_000),
};
