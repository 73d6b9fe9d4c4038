import { Global, Module, type DynamicModule } from '@nestjs/common';
import type { NatsConnection } from 'nats';
import { PLAIN_SUBJECTS, type EventSubjects, type ServiceName } from '@mesh/contracts';
import type { EventStore } from '@mesh/eventstore/port';
import { MeshClient } from './client';
import { ALWAYS_LEADER, type Leadership } from './lease';

export const NATS_CONNECTION = Symbol('NATS_CONNECTION');
export const EVENT_STORE = Symbol('EVENT_STORE');
export const SERVICE_CONFIG = Symbol('SERVICE_CONFIG');
export const SERVICE_NAME = Symbol('SERVICE_NAME');
/** The replica's Leadership (lease.ts); ALWAYS_LEADER for a service that is not replicated. */
export const LEADERSHIP = Symbol('LEADERSHIP');
/** The leases of this replica's partitions (index = partition); empty in the plain layout (docs/cluster.md "Partitions"). */
export const PARTITION_LEASES = Symbol('PARTITION_LEASES');
/** The log's layout (EventSubjects: plain or partitioned), as the server maps it. */
export const EVENT_SUBJECTS = Symbol('EVENT_SUBJECTS');

export interface MeshCore<C = unknown> {
  service: ServiceName;
  nc: NatsConnection;
  store: EventStore;
  config: C;
  leadership?: Leadership;
  partitionLeases?: readonly Leadership[];
  subjects?: EventSubjects;
}

/** Makes the connection, the (validating) event store, the config and a MeshClient injectable everywhere. */
@Global()
@Module({})
export class MeshCoreModule {
  static forRoot(core: MeshCore): DynamicModule {
    return {
      module: MeshCoreModule,
      providers: [
        { provide: NATS_CONNECTION, useValue: core.nc },
        { provide: EVENT_STORE, useValue: core.store },
        { provide: SERVICE_CONFIG, useValue: core.config },
        { provide: SERVICE_NAME, useValue: core.service },
        { provide: MeshClient, useValue: new MeshClient(core.nc) },
        { provide: LEADERSHIP, useValue: core.leadership ?? ALWAYS_LEADER },
        { provide: PARTITION_LEASES, useValue: core.partitionLeases ?? [] },
        { provide: EVENT_SUBJECTS, useValue: core.subjects ?? PLAIN_SUBJECTS },
      ],
      exports: [NATS_CONNECTION, EVENT_STORE, SERVICE_CONFIG, SERVICE_NAME, MeshClient, LEADERSHIP, PARTITION_LEASES, EVENT_SUBJECTS],
    };
  }
}
