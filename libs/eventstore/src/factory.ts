import type { NatsConnection } from 'nats';
import type { EventSubjects } from '@mesh/contracts';
import { JetStreamEventStore } from './jetstream/jetstream-event-store';
import { KurrentDbEventStore } from './kurrentdb/kurrentdb-event-store';
import type { EventStore } from './port';

export interface EventStoreConfig {
  EVENT_STORE: 'jetstream' | 'kurrentdb';
  KURRENTDB_CONNECTION_STRING?: string;
  EVENT_REPLICAS: number;
}

/** The configured adapter. In KurrentDB mode JetStream stays the bus, fed by the relay. */
export async function createEventStore(config: EventStoreConfig, nc: NatsConnection, subjects?: EventSubjects): Promise<EventStore> {
  const bus = await JetStreamEventStore.connect(nc, { replicas: config.EVENT_REPLICAS, ...(subjects ? { subjects } : {}) });
  if (config.EVENT_STORE === 'jetstream') return bus;
  if (!config.KURRENTDB_CONNECTION_STRING) {
    throw new Error('KURRENTDB_CONNECTION_STRING: required when EVENT_STORE=kurrentdb');
  }
  return KurrentDbEventStore.connect(config.KURRENTDB_CONNECTION_STRING);
}
