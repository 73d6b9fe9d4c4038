import { headers as natsHeaders, type NatsConnection } from 'nats';
import { subjectForStream } from '@mesh/contracts';
import { EventStoreInvariantError, JetStreamEventStore, REVISION_HEADER } from '@mesh/eventstore';
import { NatsServerProcess } from '@mesh/testing';
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

async function open(): Promise<JetStreamEventStore> {
  const nc = await server.connect();
  connections.push(nc);
  const store = await JetStreamEventStore.connect(nc);
  return Object.assign(store, {
    close: async () => {
      await nc.close().catch(() => undefined);
    },
  });
}

eventStoreContract('jetstream', () => ({ open, restartServer: () => server.restart() }));

describe('JetStreamEventStore invariants', () => {
  it('given a message written past the store with a revision out of sequence, then read throws an invariant error naming stream and revision', async () => {
    const store = await open();
    const stream = 'test-gap';
    await store.append(stream, [{ id: 'gap-0', type: 'TestEvent', data: { n: 0 } }], 'no_stream');
    // A writer bypassing the store: its header says revision 1 (so the tail looks right), its body 2.
    const h = natsHeaders();
    h.set(REVISION_HEADER, '1');
    const body = {
      id: 'gap-2',
      type: 'TestEvent',
      stream,
      occurredAt: new Date().toISOString(),
      schemaVersion: 1,
      correlationId: 'gap-2',
      causationId: 'gap-2',
    };
    await store.connection.jetstream().publish(subjectForStream(stream), Buffer.from(JSON.stringify({ ...body, data: { n: 2 }, revision: 2 })), { headers: h });
    const outcome = store.read(stream);
    await expect(outcome).rejects.toBeInstanceOf(EventStoreInvariantError);
    await expect(outcome).rejects.toMatchObject({ stream, revision: 1 });
    await expect(outcome).rejects.toThrow(
      /^stream test-gap: revision 1 expected, found 2 at position \d+; 1 revision\(s\) missing but only 0 deleted or quarantined/,
    );
  });
});
