import { z } from 'zod';
import { defineEvent } from '../define';
import { idSchema } from '../ids';
import { cpuMillisSchema, memoryBytesSchema } from '../units';

// --- scaling category (stream scaling-<containerId>) ---------------------------------------------
export const ScalingDecided = defineEvent(
  'scaling',
  'ScalingDecided',
  z.object({
    decisionId: idSchema,
    containerId: idSchema,
    nodeId: idSchema,
    walletId: idSchema,
    functionId: idSchema,
    fromCpuMillis: cpuMillisSchema,
    toCpuMillis: cpuMillisSchema,
    fromMemoryBytes: memoryBytesSchema,
    toMemoryBytes: memoryBytesSchema,
    reason: z.enum(['scale-up', 'scale-down', 'throttle', 'unthrottle', 'memory-up', 'memory-down']),
    /** Sample seqs (usage stream) the decision was based on. */
    basedOnSampleSeqs: z.array(z.int().min(1)).max(64),
    throttleCapMillis: cpuMillisSchema.optional(),
    decidedAtMs: z.int().min(0),
  }),
  'New CPU/memory limits for a container; its container-manager applies them.',
);

export const scalingEvents = [ScalingDecided] as const;
export const scalerEvents = scalingEvents;
