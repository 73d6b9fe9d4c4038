import { z } from 'zod';
import { defineRequest } from '../define';
import { SERVICES, type ServiceName } from '../ids';
import { healthSubject } from '../subjects';

export const healthReplySchema = z.object({
  service: z.enum(SERVICES),
  status: z.enum(['ok', 'degraded']),
  version: z.string(),
  pid: z.int(),
  uptimeMs: z.int().min(0),
  /** Last log position each projection/consumer of the service has applied, as decimal strings. */
  positions: z.record(z.string(), z.string()),
  details: z.record(z.string(), z.unknown()).optional(),
});
export type HealthReply = z.output<typeof healthReplySchema>;

export const healthRequest = (service: ServiceName) =>
  defineRequest('query', healthSubject(service), z.object({}).passthrough(), healthReplySchema, `Liveness and progress of the ${service} service.`);
