import { EventCatalog } from './define';
import { schedulerEvents } from './events/scheduler';
import { containerManagerEvents } from './events/container-manager';
import { scalerEvents } from './events/scaler';
import { creditManagerEvents } from './events/credit-manager';
import { ledgerEvents } from './events/ledger';
import { infrastructureEvents } from './events/infrastructure';

/** Every event type of the platform; publish, consume and the event store validate against it. */
export const catalog = new EventCatalog([
  ...schedulerEvents,
  ...containerManagerEvents,
  ...scalerEvents,
  ...creditManagerEvents,
  ...ledgerEvents,
  ...infrastructureEvents,
]);
