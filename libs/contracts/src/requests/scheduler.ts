import type { RequestDefinition } from '../define';

/**
 * Commands (`mesh.api.scheduler.*`) and queries (`mesh.query.scheduler.*`) of the scheduler service.
 * Define each with defineRequest(...) and list it in schedulerRequests.
 */
export const schedulerRequests: RequestDefinition[] = [];
