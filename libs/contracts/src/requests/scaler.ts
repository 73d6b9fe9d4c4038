import type { RequestDefinition } from '../define';

/**
 * Commands (`mesh.api.scaler.*`) and queries (`mesh.query.scaler.*`) of the scaler service.
 * Define each with defineRequest(...) and list it in scalerRequests.
 */
export const scalerRequests: RequestDefinition[] = [];
