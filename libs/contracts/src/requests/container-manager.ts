import type { RequestDefinition } from '../define';

/**
 * Commands (`mesh.api.container-manager.*`) and queries (`mesh.query.container-manager.*`) of the container-manager service.
 * Define each with defineRequest(...) and list it in containerManagerRequests.
 */
export const containerManagerRequests: RequestDefinition[] = [];
