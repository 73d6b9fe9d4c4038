import { AckPolicy, DeliverPolicy, type NatsConnection } from 'nats';
import { EVENTS_STREAM, EventSubjects, subjectForStream } from '@mesh/contracts';
import { ConcurrencyError, JetStreamEventStore, detectPartitions, readAllPaged } from '@mesh/eventstore';
import { NatsServerProcess } from '@mesh/testing';
import { eventStoreContract } from '../../../libs/eventstore/test/contract';

/**
 * A partitioned log (docs/cluster.md "Partitions"): the server maps every event subject to
 * `mesh.events.<category>.<id>.<p>`. The store passes the whole contract on it, every process
 * learns the layout from the server, an id's events share one partition, and a forged partition
 * is refused by the server.
 */
const PARTITIONS = 4;
let server: NatsServerProcess;
let secured: NatsServerProcess;
const connections: NatsConnection[] = [];

beforeAll(async () => {
  server = await NatsServerProcess.start({ partitions: PARTITIONS });
  secured = await NatsServerProcess.start({ auth: true, partitions: PARTITIONS });
});
afterAll(async () => {
  for (const nc of connections) await nc.close().catch(() => undefined);
  await server?.dispose();
  await secured?.dispose();
});

async function connection(on = server): Promise<NatsConnection> {
  const nc = await on.connect();
  connections.push(nc);
  return nc;
}

async function open(): Promise<JetStreamEventStore> {
  const nc = await connection();
  const store = await JetStreamEventStore.connect(nc);
  return Object.assign(store, { close: async () => void (await nc.close().catch(() => undefined)) });
}

eventStoreContract(`jetstream, ${PARTITIONS} partitions`, () => ({ open, restartServer: () => server.restart() }));

describe('a partitioned log', () => {
  it('given a server with the mapping, when a process asks, then it learns the partition count from the server (1 from a server without it)', async () => {
    expect((await detectPartitions(await connection())).partitions).toBe(PARTITIONS);
    expect((await detectPartitions(await connection(secured))).partitions).toBe(PARTITIONS);
    const plain = await NatsServerProcess.start();
    try {
      const nc = await plain.connect();
      expect((await detectPartitions(nc)).partitions).toBe(1);
      await nc.close();
    } finally {
      await plain.dispose();
    }
  });

  it('when ids are appended, then each is stored under one partition subject, the ids spread over partitions, and every read finds them', async () => {
    const store = await open();
    const ids = Array.from({ length: 24 }, (_, i) => `part${i}`);
    for (const id of ids) {
      await store.append(`test-${id}`, [{ id: `${id}-0`, type: 'TestEvent', data: { n: 0 } }], 'no_stream');
      await store.append(`test-${id}`, [{ id: `${id}-1`, type: 'TestEvent', data: { n: 1 } }], 0);
    }
    const jsm = await store.connection.jetstreamManager();
    const partitionOf = new Map<string, number>();
    for (const id of ids) {
      const info = await jsm.streams.info(EVENTS_STREAM, { subjects_filter: `${subjectForStream(`test-${id}`)}.*` });
      const subjects = Object.entries(info.state.subjects ?? {});
      // One stored subject per id, holding both of its events.
      expect(subjects).toHaveLength(1);
      expect(subjects[0][1]).toBe(2);
      partitionOf.set(id, Number(subjects[0][0].split('.').at(-1)));
      expect((await store.read(`test-${id}`)).map((e) => e.id)).toEqual([`${id}-0`, `${id}-1`]);
    }
    expect(new Set(partitionOf.values()).size).toBeGreaterThan(1);
    for (const p of partitionOf.values()) expect(p >= 0 && p < PARTITIONS).toBe(true);
    // The expected version still guards each id (the check runs on the mapped subject).
    await expect(store.append(`test-${ids[0]}`, [{ id: `${ids[0]}-x`, type: 'TestEvent', data: { n: 9 } }], 0)).rejects.toBeInstanceOf(ConcurrencyError);
    const all = [];
    for await (const e of readAllPaged(store)) all.push(e);
    for (const id of ids) expect(all.filter((e) => e.stream === `test-${id}`).map((e) => e.revision)).toEqual([0, 1]);

    // A durable consumer per partition sees exactly the ids of its partition, in order.
    const layout = new EventSubjects(PARTITIONS);
    const seen = new Map<string, Set<number>>();
    for (let p = 0; p < PARTITIONS; p++) {
      const durable = `partition_probe_${p}`;
      await jsm.consumers.add(EVENTS_STREAM, {
        durable_name: durable,
        filter_subject: layout.partitionFilter('test', p),
        ack_policy: AckPolicy.Explicit,
        deliver_policy: DeliverPolicy.All,
      });
      const info = await jsm.consumers.info(EVENTS_STREAM, durable);
      const consumer = await store.connection.jetstream().consumers.get(EVENTS_STREAM, durable);
      const batch = await consumer.fetch({ max_messages: info.num_pending, expires: 5000 });
      for await (const m of batch) {
        const id = m.subject.split('.')[3];
        if (partitionOf.has(id)) seen.set(id, (seen.get(id) ?? new Set()).add(p));
        m.ack();
      }
    }
    // Both events of an id in the partition its stored subject names, and in no other.
    for (const [id, p] of partitionOf) expect([...(seen.get(id) ?? [])]).toEqual([p]);
  }, 60_000);

  it('given the generated authorization, when a service publishes a forged partition subject, then the server refuses it and nothing is stored', async () => {
    const nc = await secured.connectAs({ kind: 'service', name: 'container-manager' });
    connections.push(nc);
    const js = nc.jetstream({ timeout: 1500 });
    // The log exists (created by the operator's store), so "nothing stored" is a count of its messages.
    const operator = await JetStreamEventStore.connect(await connection(secured));
    const jsm = await operator.connection.jetstreamManager();
    const before = (await jsm.streams.info(EVENTS_STREAM)).state.messages;
    await expect(js.publish('mesh.events.usage.c1.0', Buffer.from('{}'))).rejects.toThrow();
    expect(secured.logs).toMatch(/Publish Violation .*mesh\.refused\.usage\.c1\.0/);
    expect((await jsm.streams.info(EVENTS_STREAM)).state.messages).toBe(before);
  }, 30_000);
});
