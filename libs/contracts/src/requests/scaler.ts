import { z } from 'zod';
import { defineRequest, type RequestDefinition } from '../define';
import { idSchema } from '../ids';
import { querySubject } from '../subjects';

/**
 * Commands (`mesh.api.scaler.*`) and queries (`mesh.query.scaler.*`) of the scaler service.
 * Both queries answer from the scaler's in-memory view (rebuilt from the event log).
 */
const millis = z.int().min(0);

export const scaledContainerSchema = z.object({
  containerId: idSchema,
  nodeId: idSchema,
  walletId: idSchema,
  functionId: idSchema,
  /** Applied allocation (from ContainerStarted / the last ContainerResized). */
  cpuMillis: millis,
  memoryBytes: z.int().min(0),
  cpuMinMillis: millis,
  cpuMaxMillis: millis,
  /** The throttle cap in force (wallet overdrawn or suspended), null when none. */
  throttleCapMillis: millis.nullable(),
  lastSampleSeq: z.int().min(1).nullable(),
  lastUsageCpuMillis: millis.nullable(),
  lastMemoryBytesMax: z.int().min(0).nullable(),
  /** A decision not yet applied by the container-manager. */
  pendingDecisionId: idSchema.nullable(),
  decisions: z.int().min(0),
});
export type ScaledContainer = z.output<typeof scaledContainerSchema>;

export const SCALED_CONTAINERS_REPLY_MAX = 10_000;

export const listScaledContainers = defineRequest(
  'query',
  querySubject('scaler', 'containers'),
  z.object({ walletId: idSchema.optional(), nodeId: idSchema.optional() }),
  z.object({ containers: z.array(scaledContainerSchema).max(SCALED_CONTAINERS_REPLY_MAX), truncated: z.boolean() }),
  'Running containers the scaler tracks: current allocation, throttle cap and last usage (optionally one wallet or node).',
);

export const scaledContainerDetail = defineRequest(
  'query',
  querySubject('scaler', 'container'),
  z.object({ containerId: idSchema }),
  z.object({
    container: scaledContainerSchema,
    window: z
      .array(
        z.object({
          seq: z.int().min(1),
          usageCpuMillis: millis,
          cpuLimitMillis: millis,
          memoryBytesMax: z.int().min(0),
          memoryLimitBytes: z.int().min(0),
          windowEndMs: z.int().min(0),
        }),
      )
      .max(64),
    recentDecisions: z
      .array(
        z.object({
          decisionId: idSchema,
          reason: z.enum(['scale-up', 'scale-down', 'throttle', 'unthrottle', 'memory-up', 'memory-down']),
          fromCpuMillis: millis,
          toCpuMillis: millis,
          fromMemoryBytes: z.int().min(0),
          toMemoryBytes: z.int().min(0),
          basedOnSampleSeqs: z.array(z.int().min(1)).max(64),
          decidedAtMs: z.int().min(0),
        }),
      )
      .max(64),
  }),
  'One container: its sample window and recent scaling decisions (unknown_container if not tracked).',
);

export const scalerRequests: RequestDefinition[] = [listScaledContainers, scaledContainerDetail];
