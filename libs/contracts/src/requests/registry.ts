import type { RequestDefinition } from '../define';
import { SERVICES } from '../ids';
import { healthRequest } from './health';
import { deadLetterReplayRequest } from './deadletter';
import { schedulerRequests } from './scheduler';
import { containerManagerRequests } from './container-manager';
import { creditManagerRequests } from './credit-manager';
import { scalerRequests } from './scaler';
import { ledgerRequests } from './ledger';

/** Every command and query answered over NATS request/reply (listed in the AsyncAPI document). */
export function allRequestDefinitions(): RequestDefinition[] {
  return [
    ...SERVICES.map((s) => healthRequest(s)),
    ...SERVICES.map((s) => deadLetterReplayRequest(s)),
    ...schedulerRequests,
    ...containerManagerRequests,
    ...creditManagerRequests,
    ...scalerRequests,
    ...ledgerRequests,
  ];
}

// Re-exported here because the package index exports this module (requests/deadletter.ts is new).
export * from './deadletter';
