/**
 * Ledger throughput beside raw JetStream on the same server in the same run:
 *  - posting: N UsageCharged events appended to meter streams while the ledger runs in-process,
 *    timed from the first charge in until every wallet event (debit + credit) is out;
 *    baseline: sequential js.publish with Nats-Msg-Id (one writer waiting for each ack).
 *  - replay: verifyAudit over the whole log (events/s); baseline: an ordered consumer reading the
 *    same log and parsing each message.
 * Goals (issue 3): posting >= 50% of the raw append rate, replay >= 50% of the raw read rate.
 */
import { headers as natsHeaders, type NatsConnection } from 'nats';
import { EVENTS_STREAM, depositRequest, openWalletRequest } from '@mesh/contracts';
import { JetStreamEventStore, readAllPaged } from '@mesh/eventstore';
import { MeshClient, startService } from '@mesh/messaging';
import { NatsServerProcess } from '@mesh/testing';
import { LedgerService } from '../apps/ledger/src/main';
import { verifyAudit } from '../apps/ledger/src/audit/verify';
import type { BenchResult } from './run';

const RAW_APPENDS = 3000;
const CHARGES = 4000;
const USERS = 20;
/** Charges appended concurrently (the input side must not be the bottleneck). */
const INPUT_CONCURRENCY = 64;
const POSTING_TIMEOUT_MS = 45_000;

const chargeData = (i: number) => ({
  chargeId: `ch-c${i % 50}-${i}`, containerId: `c${i % 50}`, walletId: `u${i % USERS}`, functionId: 'f1', nodeId: 'n1', taskId: `t${i % 200}`,
  sampleId: `c${i % 50}-${i}`, sampleSeq: i + 1, windowStartMs: i * 1000, windowEndMs: i * 1000 + 1000, cpuNanos: 250_000_000, memoryByteMs: '67108864000',
  planId: 'default', planVersion: 1, currency: 'GRC', amount: '0.00041667', remainder: '1/3', providerWalletId: 'provider',
});

async function pool(total: number, width: number, job: (i: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: width }, async () => {
    while (next < total) await job(next++);
  }));
}

const seconds = (start: bigint) => Number(process.hrtime.bigint() - start) / 1e9;

async function rawRead(nc: NatsConnection, count: number): Promise<number> {
  const start = process.hrtime.bigint();
  const consumer = await nc.jetstream().consumers.get(EVENTS_STREAM, { opt_start_seq: 1 });
  const messages = await consumer.consume({ max_messages: 1000 });
  let seen = 0;
  for await (const m of messages) {
    JSON.parse(Buffer.from(m.data).toString());
    if (++seen >= count) break;
  }
  await messages.close();
  return seen / seconds(start);
}

export async function run(log: (line: string) => void): Promise<BenchResult[]> {
  const server = await NatsServerProcess.start();
  const nc = await server.connect('bench-ledger');
  const ledger = await startService(LedgerService, { NATS_URL: server.url, LEDGER_HTTP_PORT: '0', LOG_LEVEL: 'warn' });
  try {
    const store = await JetStreamEventStore.connect(nc);
    const js = nc.jetstream();
    const client = new MeshClient(nc);

    log(`raw sequential js.publish with Nats-Msg-Id x${RAW_APPENDS}`);
    const payload = (i: number) => Buffer.from(JSON.stringify({ id: `raw-${i}`, type: 'UsageDebited', stream: 'test-rawappend', data: { ...chargeData(i), balanceAfter: '1.5', prevHash: 'a'.repeat(64), hash: 'b'.repeat(64) } }));
    let start = process.hrtime.bigint();
    for (let i = 0; i < RAW_APPENDS; i++) {
      const h = natsHeaders();
      h.set('Nats-Msg-Id', `raw-${i}`);
      await js.publish('mesh.events.test.rawappend', payload(i), { headers: h });
    }
    const rawAppendRate = RAW_APPENDS / seconds(start);

    log(`opening ${USERS} user wallets`);
    for (let u = 0; u < USERS; u++) {
      await client.request(openWalletRequest, { walletId: `u${u}` });
      await client.request(depositRequest, { walletId: `u${u}`, amount: '100', reference: `seed-${u}` });
    }

    log(`posting ${CHARGES} charges end to end (${USERS} users, one hot provider wallet)`);
    const baseHead = await store.headPosition();
    const expectedHead = baseHead + BigInt(CHARGES * 3); // each charge in, a debit and a credit out
    start = process.hrtime.bigint();
    await pool(CHARGES, INPUT_CONCURRENCY, async (i) => {
      const data = chargeData(i);
      const h = natsHeaders();
      h.set('Nats-Msg-Id', `charged-${data.chargeId}`);
      h.set('Mesh-Revision', '0');
      h.set('Mesh-Type', 'UsageCharged');
      const envelope = { id: `charged-${data.chargeId}`, type: 'UsageCharged', stream: `meter-${data.containerId}-${i}`, occurredAt: new Date().toISOString(), schemaVersion: 1, correlationId: data.chargeId, causationId: data.chargeId, data };
      // One meter stream per charge, so the input side needs no per-stream ordering.
      await js.publish(`mesh.events.meter.${data.containerId}-${i}`, Buffer.from(JSON.stringify(envelope)), { headers: h });
    });
    const inputSeconds = seconds(start);
    for (;;) {
      const head = await store.headPosition();
      if (head >= expectedHead) break;
      if (seconds(start) * 1000 > POSTING_TIMEOUT_MS) throw new Error(`posting stalled: head ${head}, expected ${expectedHead}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    const postingSeconds = seconds(start);
    const postingRate = CHARGES / postingSeconds;
    log(`charges appended in ${inputSeconds.toFixed(2)} s, all posted after ${postingSeconds.toFixed(2)} s`);

    const total = Number(await store.headPosition());
    log(`raw ordered-consumer read of ${total} events`);
    const rawReadRate = await rawRead(nc, total);
    log(`adapter readAll (paged) of ${total} events, for context: the part of the replay that is reading`);
    start = process.hrtime.bigint();
    let read = 0;
    for await (const _event of readAllPaged(store, 1n, 10_000)) read++;
    const adapterReadRate = read / seconds(start);
    log(`audit replay of ${total} events`);
    start = process.hrtime.bigint();
    const report = await verifyAudit(store);
    const replayRate = report.events / seconds(start);
    if (!report.pass) throw new Error(`audit failed after the benchmark: ${JSON.stringify(report.invariants.filter((i) => !i.pass))}`);
    log(`audit: ${report.events} events, ${report.debits} debits, ${report.credits} credits, pass`);

    return [
      { name: 'ledger posting, charges end to end', value: postingRate, unit: 'charges/s', baseline: { name: 'js.publish sequential', value: rawAppendRate }, goal: '>= 50% of raw append', met: postingRate / rawAppendRate >= 0.5 },
      { name: 'ledger posting, wallet events out', value: postingRate * 2, unit: 'events/s', baseline: { name: 'js.publish sequential', value: rawAppendRate } },
      { name: 'event store readAll alone (context)', value: adapterReadRate, unit: 'events/s', baseline: { name: 'ordered consumer', value: rawReadRate } },
      { name: 'audit replay (verifyAudit)', value: replayRate, unit: 'events/s', baseline: { name: 'ordered consumer', value: rawReadRate }, goal: '>= 50% of raw read', met: replayRate / rawReadRate >= 0.5 },
    ];
  } finally {
    await ledger.stop();
    await nc.close();
    await server.dispose();
  }
}
