/**
 * The ledger benchmark's workload measured in CPU time of this process instead of wall-clock time,
 * for comparing code changes on a loaded machine (other engineers' runs make the wall-clock ratios
 * of `npm run bench ledger` swing by 2x; the CPU one process spends per event or charge swings far
 * less). Not a goal figure: `npm run bench ledger` is. The ledger runs in this process (as in the
 * benchmark), the charge producer in a child; per round it prints the process's CPU microseconds
 * per charge posted, per event of the raw ordered-consumer read, of readAll and of verifyAudit.
 *
 *   npx ts-node --transpile-only -r tsconfig-paths/register bench/ledger-cpu.ts [rounds]
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { verifyAudit } from '@mesh/audit';
import { depositRequest, formatAmount, openWalletRequest, parseAmount, totalsRequest } from '@mesh/contracts';
import { JetStreamEventStore, readAllPaged } from '@mesh/eventstore';
import { MeshClient, startService } from '@mesh/runtime';
import { NatsServerProcess } from '@mesh/testing';
import { LedgerService } from '../apps/ledger/src/main';
import { ChargeProducer, chargeData } from './ledger-charge-producer';
import { median, rawRead } from './support';

const CHARGES = 3000;
const USERS = 20;
/** Posting rounds (the first is a warm-up), as in the benchmark: 6 x 3000 charges make its ~36,700-event log. */
const POSTING_ROUNDS = 6;

/** CPU microseconds of this process per unit of work `fn` reports. */
async function cpuPer(fn: () => Promise<number>): Promise<number> {
  const before = process.cpuUsage();
  const units = await fn();
  const used = process.cpuUsage(before);
  return (used.user + used.system) / units;
}

async function main(rounds: number): Promise<void> {
  const server = await NatsServerProcess.start();
  const nc = await server.connect('bench-ledger-cpu');
  const ledger = await startService(LedgerService, { NATS_URL: server.url, LEDGER_HTTP_PORT: '0', LOG_LEVEL: 'warn' });
  try {
    const store = await JetStreamEventStore.connect(nc);
    const client = new MeshClient(nc);
    for (let u = 0; u < USERS; u++) {
      await client.request(openWalletRequest, { walletId: `u${u}` });
      await client.request(depositRequest, { walletId: `u${u}`, amount: '100', reference: `seed-${u}` });
    }
    const producer = await ChargeProducer.start(server.url, CHARGES, USERS);
    const posting: number[] = [];
    try {
      for (let round = 0; round < POSTING_ROUNDS; round++) {
        const expected = formatAmount(parseAmount(chargeData(0).amount) * BigInt(CHARGES * (round + 1)));
        const perCharge = await cpuPer(async () => {
          await producer.produce(round * CHARGES);
          for (;;) {
            const totals = await client.request(totalsRequest, {});
            if (totals.debited === expected && totals.credited === expected) return CHARGES;
            await sleep(10);
          }
        });
        if (round > 0) posting.push(perCharge);
      }
    } finally {
      producer.stop();
    }
    const total = Number(await store.headPosition());
    const [raw, readAll, audit]: number[][] = [[], [], []];
    for (let round = 0; round < rounds; round++) {
      raw.push(await cpuPer(() => rawRead(nc, total, { fromSeq: 1 })));
      readAll.push(
        await cpuPer(async () => {
          let read = 0;
          for await (const _event of readAllPaged(store, 1n, 10_000)) read++;
          return read;
        }),
      );
      audit.push(
        await cpuPer(async () => {
          const report = await verifyAudit(store);
          if (!report.pass) throw new Error('audit failed');
          return report.events;
        }),
      );
    }
    const [p, r, a, v] = [posting, raw, readAll, audit].map(median);
    console.log(`posting: ${p.toFixed(0)} us CPU per charge (median of ${posting.length} rounds of ${CHARGES})`);
    console.log(
      `replay of ${total} events, us CPU per event (median of ${rounds}): raw ordered consumer ${r.toFixed(2)}, readAll ${a.toFixed(2)}, verifyAudit ${v.toFixed(2)}`,
    );
    console.log(`CPU ratios (raw / ours): readAll ${(r / a).toFixed(2)}, verifyAudit ${(r / v).toFixed(2)}`);
  } finally {
    await ledger.stop();
    await nc.close();
    await server.dispose();
  }
}

main(Number(process.argv[2] ?? 7)).catch((err) => {
  console.error(err);
  process.exit(1);
});
