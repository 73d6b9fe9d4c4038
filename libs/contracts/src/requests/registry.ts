import type { RequestDefinition } from '../define';
import { SERVICES } from '../ids';
import { healthRequest } from './health';
import { schedulerRequests } from './scheduler';
import { containerManagerRequests } from './container-manager';
import { creditManagerRequests } from './credit-manager';
import { scalerRequests } from './scaler';
import { ledgerRequests } from './ledger';

/** Every command and query answered over NATS request/reply (listed in the AsyncAPI document). */
export function allRequestDefinitions(): RequestDefinition[] {
  return [
    ...SERVICES.map((s) => healthRequest(s)),
    ...schedulerRequests,
    ...containerManagerRequests,
    ...creditManagerRequests,
    ...scalerRequests,
    ...ledgerRequests,
  ];
}
