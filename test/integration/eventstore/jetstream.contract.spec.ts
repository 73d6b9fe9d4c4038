import type { NatsConnection } from 'nats';
import { NatsServerProcess } from '@mesh/testing';
import { JetStreamEventStore } from '@mesh/eventstore';
import { eventStoreContract } from '../../../libs/eventstore/test/contract';

let server: NatsServerProcess;
const connections: NatsConnection[] = [];

beforeAll(async () => {
  server = await NatsServerProcess.start();
});
afterAll(async () => {
  for (const nc of connections) await nc.close().catch(() => undefined);
  await server.dispose();
});

eventStoreContract('jetstream', () => ({
  open: async () => {
    const nc = await server.connect();
    connections.push(nc);
    const store = await JetStreamEventStore.connect(nc);
    return Object.assign(store, {
      close: async () => {
        await nc.close().catch(() => undefined);
      },
    });
  },
  restartServer: () => server.restart(),
}));
