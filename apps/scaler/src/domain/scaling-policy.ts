import { ConfigError } from '@mesh/config';

/**
 * The knobs of the scaling rules, in the units the rules use. Built from the service config (or
 * directly in specs and benchmarks) and checked once: the rules assume these invariants.
 */
export interface ScalingPolicy {
  throttleCapMillis: number;
  boundaryMillis: number;
  scaleUpSamples: number;
  scaleDownSamples: number;
  scaleUpGain: number;
  windowSamples: number;
  sampleMaxAgeMs: number;
  decisionTimeoutMs: number;
  memoryHighWatermarkPct: number;
  memoryTargetPct: number;
  memoryLowWatermarkPct: number;
  memoryDownSamples: number;
  memoryDownStepPct: number;
  memoryMinBytes: number;
  memoryMaxBytes: number;
}

export const DEFAULT_POLICY: ScalingPolicy = {
  throttleCapMillis: 500,
  boundaryMillis: 250,
  scaleUpSamples: 2,
  scaleDownSamples: 6,
  scaleUpGain: 4,
  windowSamples: 16,
  sampleMaxAgeMs: 3000,
  decisionTimeoutMs: 5000,
  memoryHighWatermarkPct: 90,
  memoryTargetPct: 70,
  memoryLowWatermarkPct: 50,
  memoryDownSamples: 30,
  memoryDownStepPct: 10,
  memoryMinBytes: 64 * 1024 * 1024,
  memoryMaxBytes: 16 * 1024 * 1024 * 1024,
};

/** Returns the policy or throws a ConfigError naming each variable and the rule it breaks. */
export function checkPolicy(policy: ScalingPolicy): ScalingPolicy {
  const problems: { variable: string; rule: string }[] = [];
  if (policy.scaleUpSamples > policy.windowSamples)
    problems.push({ variable: 'SCALE_UP_SAMPLES', rule: `must be <= WINDOW_SAMPLES (${policy.windowSamples})` });
  if (policy.scaleDownSamples > policy.windowSamples)
    problems.push({ variable: 'SCALE_DOWN_SAMPLES', rule: `must be <= WINDOW_SAMPLES (${policy.windowSamples})` });
  // A memory limit set at TARGET% must not be "high" at once, nor "low".
  if (policy.memoryTargetPct >= policy.memoryHighWatermarkPct)
    problems.push({ variable: 'MEMORY_TARGET_PCT', rule: `must be < MEMORY_HIGH_WATERMARK_PCT (${policy.memoryHighWatermarkPct})` });
  if (policy.memoryLowWatermarkPct >= policy.memoryTargetPct)
    problems.push({ variable: 'MEMORY_LOW_WATERMARK_PCT', rule: `must be < MEMORY_TARGET_PCT (${policy.memoryTargetPct})` });
  if (policy.memoryMinBytes > policy.memoryMaxBytes)
    problems.push({ variable: 'MEMORY_MIN_BYTES', rule: `must be <= MEMORY_MAX_BYTES (${policy.memoryMaxBytes})` });
  if (problems.length) throw new ConfigError(problems);
  return policy;
}

/** The policy from the scaler's validated config variables. */
export function policyFromConfig(config: {
  THROTTLE_CAP_MILLIS: number;
  SCALE_BOUNDARY_MILLIS: number;
  SCALE_UP_SAMPLES: number;
  SCALE_DOWN_SAMPLES: number;
  SCALE_UP_GAIN: number;
  WINDOW_SAMPLES: number;
  SAMPLE_MAX_AGE_MS: number;
  DECISION_TIMEOUT_MS: number;
  MEMORY_HIGH_WATERMARK_PCT: number;
  MEMORY_TARGET_PCT: number;
  MEMORY_LOW_WATERMARK_PCT: number;
  MEMORY_DOWN_SAMPLES: number;
  MEMORY_DOWN_STEP_PCT: number;
  MEMORY_MIN_BYTES: number;
  MEMORY_MAX_BYTES: number;
}): ScalingPolicy {
  return checkPolicy({
    throttleCapMillis: config.THROTTLE_CAP_MILLIS,
    boundaryMillis: config.SCALE_BOUNDARY_MILLIS,
    scaleUpSamples: config.SCALE_UP_SAMPLES,
    scaleDownSamples: config.SCALE_DOWN_SAMPLES,
    scaleUpGain: config.SCALE_UP_GAIN,
    windowSamples: config.WINDOW_SAMPLES,
    sampleMaxAgeMs: config.SAMPLE_MAX_AGE_MS,
    decisionTimeoutMs: config.DECISION_TIMEOUT_MS,
    memoryHighWatermarkPct: config.MEMORY_HIGH_WATERMARK_PCT,
    memoryTargetPct: config.MEMORY_TARGET_PCT,
    memoryLowWatermarkPct: config.MEMORY_LOW_WATERMARK_PCT,
    memoryDownSamples: config.MEMORY_DOWN_SAMPLES,
    memoryDownStepPct: config.MEMORY_DOWN_STEP_PCT,
    memoryMinBytes: config.MEMORY_MIN_BYTES,
    memoryMaxBytes: config.MEMORY_MAX_BYTES,
  });
}
