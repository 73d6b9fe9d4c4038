import { z } from 'zod';
import { defineRequest, type RequestDefinition } from '../define';
import { idSchema } from '../ids';
import { apiSubject } from '../subjects';

/**
 * Commands (`mesh.api.container-manager.*`) and queries (`mesh.query.container-manager.*`) of the container-manager service.
 * Define each with defineRequest(...) and list it in containerManagerRequests.
 */

export const drainNodeRequest = defineRequest(
  'command',
  apiSubject('container-manager', 'drain-node'),
  z.strictObject({ nodeId: idSchema }),
  z.object({
    nodeId: idSchema,
    /** `draining` until its running tasks have ended, then the node itself records NodeLeft (reason drained). */
    state: z.literal('draining'),
    requestedAtMs: z.int().min(0),
  }),
  'Drains a worker node: NodeDrainRequested, after which the scheduler places nothing new there; the node lets its running tasks end, then leaves (NodeLeft, reason drained). Any container-manager answers (they share the queue group). Operator only. Idempotent. Refused: unknown_node (never registered), node_left (left; drain it again once it registers).',
);

export const containerManagerRequests: RequestDefinition[] = [drainNodeRequest];
