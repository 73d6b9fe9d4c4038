import type { RequestDefinition } from '../define';

/**
 * Commands (`mesh.api.ledger.*`) and queries (`mesh.query.ledger.*`) of the ledger service.
 * Define each with defineRequest(...) and list it in ledgerRequests.
 */
export const ledgerRequests: RequestDefinition[] = [];
