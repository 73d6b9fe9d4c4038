import { eventStoreContract } from '../../test/contract';
import { InMemoryEventStore } from './in-memory-event-store';

// The same contract as the JetStream and KurrentDB adapters; every store opened shares one log.
let first: InMemoryEventStore | undefined;
eventStoreContract('memory', () => ({
  open: () => {
    const store = first ? first.connect() : (first = new InMemoryEventStore());
    return Promise.resolve(store);
  },
}));
