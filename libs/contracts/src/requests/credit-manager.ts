import type { RequestDefinition } from '../define';

/**
 * Commands (`mesh.api.credit-manager.*`) and queries (`mesh.query.credit-manager.*`) of the credit-manager service.
 * Define each with defineRequest(...) and list it in creditManagerRequests.
 */
export const creditManagerRequests: RequestDefinition[] = [];
