/**
 * Event store throughput: our JetStream adapter next to a raw JetStream publish/consume loop on the
 * same server in the same run. Goal: adapter >= 80% of raw for appends and reads.
 */
import { headers as natsHeaders, type NatsConnection } from 'nats';
import type { NewEvent } from '@mesh/contracts';
import { JetStreamEventStore, readAllPaged } from '@mesh/eventstore';
import { NatsServerProcess } from '@mesh/testing';
import type { BenchResult } from './run';
import { addRawStream, perSecond, pool, rateVsRaw, rawRead } from './support';

const SEQUENTIAL_EVENTS = 3000;
const CONCURRENT_EVENTS = 20000;
const CONCURRENCY = 64;
const payload = (n: number) => ({ n, note: 'x'.repeat(200) });

function rawPublish(nc: NatsConnection, subject: string, id: string, n: number) {
  const h = natsHeaders();
  h.set('Nats-Msg-Id', id);
  return nc.jetstream().publish(subject, Buffer.from(JSON.stringify({ id, type: 'TestEvent', data: payload(n) })), { headers: h });
}

export async function run(log: (line: string) => void): Promise<BenchResult[]> {
  const server = await NatsServerProcess.start();
  const nc = await server.connect('bench');
  try {
    const store = await JetStreamEventStore.connect(nc);
    const ev = (id: string, n: number): NewEvent => ({ id, type: 'TestEvent', data: payload(n) });

    await addRawStream(nc);

    log(`raw sequential publish x${SEQUENTIAL_EVENTS}`);
    const rawSeq = await perSecond(() => pool(SEQUENTIAL_EVENTS, 1, (i) => rawPublish(nc, 'bench.raw.seq', `rs${i}`, i)));
    log(`adapter sequential append with expected version x${SEQUENTIAL_EVENTS}`);
    const oursSeq = await perSecond(() => pool(SEQUENTIAL_EVENTS, 1, (i) => store.append('test-seq', [ev(`as${i}`, i)], i - 1)));

    log(`raw concurrent publish x${CONCURRENT_EVENTS} (${CONCURRENCY} in flight, ${CONCURRENCY} subjects)`);
    const rawConc = await perSecond(() => pool(CONCURRENT_EVENTS, CONCURRENCY, (i) => rawPublish(nc, `bench.raw.c${i % CONCURRENCY}`, `rc${i}`, i)));
    log(`adapter concurrent append x${CONCURRENT_EVENTS} (${CONCURRENCY} streams, one writer each, expected version)`);
    const versions = new Array<number>(CONCURRENCY).fill(-1);
    const oursConc = await perSecond(() =>
      pool(CONCURRENT_EVENTS, CONCURRENCY, async (i) => {
        // Worker w appends to its own stream, so the expected version is known without a read.
        const w = i % CONCURRENCY;
        const expected = versions[w];
        versions[w] = expected + 1;
        await store.append(`test-conc${w}`, [ev(`ac${i}`, i)], expected);
      }),
    );

    const total = Number(await store.headPosition());
    // Both reads walk the same MESH_EVENTS messages: the raw one parses JSON, ours decodes and checks.
    log(`raw ordered-consumer read of ${total} events`);
    const rawReadRate = await perSecond(() => rawRead(nc, total, { fromSeq: 1, filterSubjects: 'mesh.events.>' }));
    log(`adapter readAll (paged) of ${total} events`);
    const oursReadRate = await perSecond(async () => {
      let n = 0;
      for await (const _event of readAllPaged(store, 1n, 10_000)) n++;
      return n;
    });

    const vsPublish = (name: string, ours: number, raw: number) => rateVsRaw(name, ours, 'events/s', { name: 'js.publish', value: raw }, 0.8, '>= 80% of raw');
    return [
      vsPublish('append, sequential, expected version', oursSeq, rawSeq),
      vsPublish(`append, concurrent (${CONCURRENCY} streams)`, oursConc, rawConc),
      rateVsRaw('readAll', oursReadRate, 'events/s', { name: 'ordered consumer', value: rawReadRate }, 0.8, '>= 80% of raw'),
    ];
  } finally {
    await nc.close();
    await server.dispose();
  }
}
