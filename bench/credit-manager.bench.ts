/**
 * The heart of the product: sample -> charge -> debit -> standing change, on a real nats-server with
 * the real ledger and the credit-manager started in-process (startService).
 *  - Reaction time: the ResourceSampled that crosses a threshold appended to usage-<containerId> ->
 *    StandingChanged recorded in standing-<walletId> (seen on core NATS), p50/p99 over every
 *    crossing (normal->low, low->overdrawn, overdrawn->suspended) of TRIALS wallets, each sample
 *    appended once the previous one was debited. Beside it, in the same run: the raw JetStream
 *    publish -> durable consumer -> publish round trip, once (one hop) and chained three times
 *    (the same number of hops as sample -> charge -> debit -> standing).
 *  - Overshoot: how far beyond max debt a suspended wallet went, in units of one sample's charge,
 *    (a) at the moment of suspension in the run above and (b) with samples arriving every
 *    BURST_INTERVAL_MS without waiting (10x the production rate), counting the samples already
 *    appended when the suspension was recorded (they are charged too).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { AckPolicy, DeliverPolicy, headers as natsHeaders, type NatsConnection } from 'nats';
import { EVENTS_STREAM, depositRequest, openWalletRequest, parseAmount, type NewEvent } from '@mesh/contracts';
import { JetStreamEventStore } from '@mesh/eventstore';
import { MeshClient, startService } from '@mesh/runtime';
import { NatsServerProcess, containerStartedEvent, resourceSampledEvent } from '@mesh/testing';
import { CreditManagerService } from '../apps/credit-manager/src/main';
import { LedgerService } from '../apps/ledger/src/main';
import { standingOf } from '../apps/credit-manager/src/domain/standing-decider';
import type { BenchResult } from './run';
import { firstMessage, msSince, percentile } from './support';

const TRIALS = 60;
const RAW_TRIALS = 200;
const BURST_WALLETS = 5;
const BURST_INTERVAL_MS = 100;
const MiB = 1024 * 1024;
/** 1.3 core-s (+7 ns): 0.00216666... GRC at 6 GRC per core-hour, not a whole number of minor units. */
const SAMPLE_CPU_NANOS = 1_300_000_007;
const SAMPLE_CHARGE_MINOR = (BigInt(SAMPLE_CPU_NANOS) * parseAmount('6')) / 3_600_000_000_000n;
const WALLET = { deposit: '0.005', minBalance: '0.002', maxDebt: '0.005' };
const LATENCY_GOAL_MS = 50;
const POLICY = { maxDebtMinor: parseAmount(WALLET.maxDebt), minBalanceMinor: parseAmount(WALLET.minBalance), policy: 'greedy' as const };

/** Raw JetStream: publish on hop 0, a durable consumer per hop republishes to the next; latency to the last. */
async function rawChain(nc: NatsConnection, hops: number, count: number): Promise<number[]> {
  const jsm = await nc.jetstreamManager();
  const js = nc.jetstream();
  const subject = (h: number) => `mesh.events.test.chain${hops}_${h}`;
  const loops: Promise<void>[] = [];
  const closers: (() => Promise<void>)[] = [];
  for (let h = 0; h < hops; h++) {
    const durable = `bench_raw_${hops}_${h}`;
    await jsm.consumers.add(EVENTS_STREAM, {
      durable_name: durable,
      filter_subject: subject(h),
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.New,
    });
    const messages = await (await js.consumers.get(EVENTS_STREAM, durable)).consume({ max_messages: 256 });
    closers.push(() => messages.close().then(() => undefined));
    loops.push(
      (async () => {
        for await (const m of messages) {
          const hd = natsHeaders();
          hd.set('Nats-Msg-Id', `chain${hops}-${h + 1}-${m.seq}`);
          await js.publish(subject(h + 1), m.data, { headers: hd });
          m.ack();
        }
      })(),
    );
  }
  const latencies: number[] = [];
  for (let i = 0; i < count; i++) {
    const seen = firstMessage(nc, subject(hops));
    const hd = natsHeaders();
    hd.set('Nats-Msg-Id', `chain${hops}-0-${i}`);
    const start = process.hrtime.bigint();
    await js.publish(subject(0), Buffer.from(JSON.stringify({ i })), { headers: hd });
    await seen;
    latencies.push(msSince(start));
  }
  for (const close of closers) await close();
  await Promise.all(loops);
  return latencies;
}

interface Seen {
  debits: Map<string, bigint>; // chargeId -> balanceAfter (minor)
  standings: { to: string; balance: bigint; atNs: bigint; causeEventId: string }[];
}

/** Follows one wallet's ledger postings and standing changes on core NATS (every JetStream append is also a core message). */
function follow(nc: NatsConnection, walletId: string) {
  const seen: Seen = { debits: new Map(), standings: [] };
  const waiters: (() => void)[] = [];
  const wake = () => waiters.splice(0).forEach((w) => w());
  const subs = [
    nc.subscribe(`mesh.events.wallet.${walletId}`, {
      callback: (_e, m) => {
        const event = JSON.parse(Buffer.from(m.data).toString()) as { type: string; data: { chargeId?: string; balanceAfter: string } };
        if (event.type === 'UsageDebited')
          seen.debits.set(event.data.chargeId!, parseAmount(event.data.balanceAfter, undefined, { allowNegative: true, allowZero: true }));
        wake();
      },
    }),
    nc.subscribe(`mesh.events.standing.${walletId}`, {
      callback: (_e, m) => {
        const atNs = process.hrtime.bigint();
        const event = JSON.parse(Buffer.from(m.data).toString()) as { data: { to: string; balance: string; causeEventId: string } };
        seen.standings.push({
          to: event.data.to,
          balance: parseAmount(event.data.balance, undefined, { allowNegative: true, allowZero: true }),
          atNs,
          causeEventId: event.data.causeEventId,
        });
        wake();
      },
    }),
  ];
  const until = async (check: () => boolean, what: string, timeoutMs = 10_000) => {
    const deadline = Date.now() + timeoutMs;
    while (!check()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} of ${walletId}`);
      await new Promise<void>((resolve) => {
        waiters.push(resolve);
        setTimeout(resolve, 50);
      });
    }
  };
  return { seen, until, stop: () => subs.forEach((s) => s.unsubscribe()) };
}

function sampleOf(containerId: string, walletId: string, seq: number): NewEvent {
  return resourceSampledEvent(
    { containerId, nodeId: 'bn1', walletId, functionId: 'bf1' },
    {
      seq,
      taskId: `t${containerId}`,
      windowEndMs: Date.now(),
      cpuNanos: SAMPLE_CPU_NANOS,
      memoryBytes: 64 * MiB,
      cpuLimitMillis: 2000,
      memoryLimitBytes: 256 * MiB,
    },
  );
}

async function prepareWallet(client: MeshClient, store: JetStreamEventStore, walletId: string, containerId: string) {
  await client.request(openWalletRequest, { walletId, maxDebt: WALLET.maxDebt, minBalance: WALLET.minBalance, policy: 'greedy' });
  await client.request(depositRequest, { walletId, amount: WALLET.deposit, reference: `${walletId}-dep` });
  await store.append(
    `container-${containerId}`,
    [containerStartedEvent({ containerId, nodeId: 'bn1', walletId, functionId: 'bf1' }, { cpuMillis: 2000, memoryBytes: 256 * MiB })],
    'no_stream',
  );
}

/**
 * Opens and funds `walletId` with one container `containerId`, follows the wallet until its standing
 * is normal, then runs `body` with what is followed; stops following however `body` ends.
 */
async function withFundedWallet<T>(
  nc: NatsConnection,
  client: MeshClient,
  store: JetStreamEventStore,
  walletId: string,
  containerId: string,
  body: (f: ReturnType<typeof follow>) => Promise<T>,
): Promise<T> {
  const f = follow(nc, walletId);
  try {
    await prepareWallet(client, store, walletId, containerId);
    await f.until(() => f.seen.standings.some((s) => s.to === 'normal'), 'normal standing');
    return await body(f);
  } finally {
    f.stop();
  }
}

/** Samples one at a time (each once the previous one was debited) until suspended: latency of every crossing. */
async function sequentialRun(nc: NatsConnection, client: MeshClient, store: JetStreamEventStore, i: number) {
  const walletId = `bw${i}`;
  const containerId = `bc${i}`;
  return withFundedWallet(nc, client, store, walletId, containerId, async (f) => {
    const latencies: number[] = [];
    let expected = standingOf(parseAmount(WALLET.deposit), POLICY);
    for (let seq = 1; seq <= 50; seq++) {
      const before = f.seen.standings.length;
      const start = process.hrtime.bigint();
      await store.append(`usage-${containerId}`, [sampleOf(containerId, walletId, seq)], seq === 1 ? 'no_stream' : seq - 2);
      await f.until(() => f.seen.debits.has(`ch-${containerId}-${seq}`), `debit ${seq}`);
      // Whether this sample crossed a threshold follows from the balance the ledger posted.
      const now = standingOf(f.seen.debits.get(`ch-${containerId}-${seq}`)!, POLICY);
      if (now !== expected) {
        expected = now;
        await f.until(() => f.seen.standings.length > before, `standing ${now} after sample ${seq}`);
        const change = f.seen.standings[f.seen.standings.length - 1];
        if (change.to !== now) throw new Error(`${walletId}: expected ${now}, recorded ${change.to}`);
        latencies.push(Number(change.atNs - start) / 1e6);
        if (change.to === 'suspended') {
          return { latencies, overshootMinor: -change.balance - parseAmount(WALLET.maxDebt) };
        }
      }
    }
    throw new Error(`${walletId} never suspended`);
  });
}

/** Samples every BURST_INTERVAL_MS without waiting: how many were charged beyond the suspending one. */
async function burstRun(nc: NatsConnection, client: MeshClient, store: JetStreamEventStore, i: number) {
  const walletId = `bb${i}`;
  const containerId = `bbc${i}`;
  return withFundedWallet(nc, client, store, walletId, containerId, async (f) => {
    let appended = 0;
    while (!f.seen.standings.some((s) => s.to === 'suspended')) {
      if (appended >= 50) throw new Error(`${walletId} never suspended`);
      appended++;
      await store.append(`usage-${containerId}`, [sampleOf(containerId, walletId, appended)], appended === 1 ? 'no_stream' : appended - 2);
      await sleep(BURST_INTERVAL_MS);
    }
    // Every sample appended by the time the suspension was seen is charged; the container-manager stops the container then.
    await f.until(() => f.seen.debits.size >= appended, 'all debits');
    const finalBalance = [...f.seen.debits.values()].reduce((min, b) => (b < min ? b : min), 0n);
    return -finalBalance - parseAmount(WALLET.maxDebt);
  });
}

export async function run(log: (line: string) => void): Promise<BenchResult[]> {
  const server = await NatsServerProcess.start();
  const nc = await server.connect('bench-credit-manager');
  const env = { NATS_URL: server.url, LOG_LEVEL: 'error', LEDGER_HTTP_PORT: '0' };
  const ledger = await startService(LedgerService, env);
  const credit = await startService(CreditManagerService, env);
  try {
    const store = await JetStreamEventStore.connect(nc);
    const client = new MeshClient(nc);
    log(
      `one sample = ${SAMPLE_CPU_NANOS} core-ns = ${SAMPLE_CHARGE_MINOR} minor units (floor); wallet: deposit ${WALLET.deposit}, minBalance ${WALLET.minBalance}, maxDebt ${WALLET.maxDebt} GRC`,
    );
    log(`raw JetStream publish -> durable consumer -> publish, 1 hop and 3 hops, x${RAW_TRIALS}`);
    const raw1 = await rawChain(nc, 1, RAW_TRIALS);
    const raw3 = await rawChain(nc, 3, RAW_TRIALS);
    log(`credit path: crossing sample appended -> StandingChanged recorded, ${TRIALS} wallets until suspended`);
    const latencies: number[] = [];
    const overshoots: bigint[] = [];
    for (let i = 0; i < TRIALS; i++) {
      const r = await sequentialRun(nc, client, store, i);
      latencies.push(...r.latencies);
      overshoots.push(r.overshootMinor);
    }
    log(`${latencies.length} crossings measured`);
    log(`burst: samples every ${BURST_INTERVAL_MS} ms without waiting, ${BURST_WALLETS} wallets`);
    const burst: bigint[] = [];
    for (let i = 0; i < BURST_WALLETS; i++) burst.push(await burstRun(nc, client, store, i));
    const inSamples = (minor: bigint) => Number(minor) / Number(SAMPLE_CHARGE_MINOR);
    const worst = (xs: bigint[]) => xs.reduce((a, b) => (b > a ? b : a), xs[0]);
    const [p50, p99] = [percentile(latencies, 50), percentile(latencies, 99)];
    return [
      {
        name: 'sample -> StandingChanged, p50',
        value: p50,
        unit: 'ms',
        baseline: { name: 'JetStream 3-hop chain p50', value: percentile(raw3, 50) },
        goal: `p99 <= ${LATENCY_GOAL_MS} ms`,
        met: p99 <= LATENCY_GOAL_MS,
      },
      {
        name: 'sample -> StandingChanged, p99',
        value: p99,
        unit: 'ms',
        baseline: { name: 'JetStream 3-hop chain p99', value: percentile(raw3, 99) },
        goal: `<= ${LATENCY_GOAL_MS} ms`,
        met: p99 <= LATENCY_GOAL_MS,
      },
      { name: 'raw JetStream 1-hop round trip, p50', value: percentile(raw1, 50), unit: 'ms' },
      { name: 'raw JetStream 1-hop round trip, p99', value: percentile(raw1, 99), unit: 'ms' },
      {
        name: 'overshoot beyond max debt at suspension (worst)',
        value: inSamples(worst(overshoots)),
        unit: 'samples',
        goal: '<= 1 sample',
        met: inSamples(worst(overshoots)) <= 1,
      },
      {
        name: `overshoot, samples every ${BURST_INTERVAL_MS} ms (worst)`,
        value: inSamples(worst(burst)),
        unit: 'samples',
        goal: '<= 1 sample',
        met: inSamples(worst(burst)) <= 1,
      },
    ];
  } finally {
    await credit.stop();
    await ledger.stop();
    await nc.close();
    await server.dispose();
  }
}
