/**
 * Scaler reaction time from a usage step to the ScalingDecided event:
 *  - in samples, with the pure decider on the reference system's stress staircase (1 -> 2 -> 3 -> 2
 *    -> 1 cores, usage = min(demand, allocation)), decisions applied before the next sample;
 *  - in ms end to end on a real nats-server: the deciding sample appended to the usage stream ->
 *    ScalingDecided recorded in scaling-<containerId>, beside a raw JetStream publish -> durable
 *    consumer -> JetStream publish round trip measured in the same run.
 */
import { AckPolicy, DeliverPolicy, headers as natsHeaders, type NatsConnection } from 'nats';
import { EVENTS_STREAM, type NewEvent } from '@mesh/contracts';
import { JetStreamEventStore } from '@mesh/eventstore';
import { startService } from '@mesh/messaging';
import { NatsServerProcess } from '@mesh/testing';
import { DEFAULT_POLICY } from '../apps/scaler/src/domain/scaling-policy';
import { reactionSamples, simulate, staircase } from '../apps/scaler/src/domain/simulation';
import { ScalerService } from '../apps/scaler/src/main';
import type { BenchResult } from './run';

const TRIALS = Number(process.env.SCALER_BENCH_TRIALS ?? 200);
const STEP_SAMPLES = 20;
const MiB = 1024 * 1024;

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

const ms = (startNs: bigint) => Number(process.hrtime.bigint() - startNs) / 1e6;

/** Resolves with the first message on `subject` (core NATS sees every JetStream publish). */
function firstMessage(nc: NatsConnection, subject: string, timeoutMs = 10_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      sub.unsubscribe();
      reject(new Error(`nothing on ${subject} within ${timeoutMs} ms`));
    }, timeoutMs);
    const sub = nc.subscribe(subject, {
      max: 1,
      callback: () => {
        clearTimeout(timer);
        resolve();
      },
    });
  });
}

function staircaseReactions() {
  const { demandAt, steps } = staircase(STEP_SAMPLES);
  const trace = simulate(DEFAULT_POLICY, demandAt, steps.length * STEP_SAMPLES);
  const rises: number[] = [];
  const falls: number[] = [];
  steps.forEach((step, i) => {
    if (i === 0) return;
    const rising = step.demandCpuMillis > steps[i - 1].demandCpuMillis;
    const r = reactionSamples(trace, step.fromSeq, step.fromSeq + STEP_SAMPLES, rising, DEFAULT_POLICY.boundaryMillis) ?? Infinity;
    (rising ? rises : falls).push(r);
  });
  // Samples of the step before the deciding one: the decision itself lands one sample earlier than "follows".
  return { rise: Math.max(...rises), fall: Math.max(...falls) };
}

async function rawRoundTrips(nc: NatsConnection, count: number): Promise<number[]> {
  const jsm = await nc.jetstreamManager();
  await jsm.consumers.add(EVENTS_STREAM, { durable_name: 'bench_raw', filter_subject: 'mesh.events.test.ping', ack_policy: AckPolicy.Explicit, deliver_policy: DeliverPolicy.New });
  const js = nc.jetstream();
  const messages = await (await js.consumers.get(EVENTS_STREAM, 'bench_raw')).consume({ max_messages: 256 });
  const loop = (async () => {
    for await (const m of messages) {
      const h = natsHeaders();
      h.set('Nats-Msg-Id', `pong-${m.seq}`);
      await js.publish('mesh.events.test.pong', m.data, { headers: h });
      m.ack();
    }
  })();
  const latencies: number[] = [];
  for (let i = 0; i < count; i++) {
    const seen = firstMessage(nc, 'mesh.events.test.pong');
    const h = natsHeaders();
    h.set('Nats-Msg-Id', `ping-${i}`);
    const start = process.hrtime.bigint();
    await js.publish('mesh.events.test.ping', Buffer.from(JSON.stringify({ i })), { headers: h });
    await seen;
    latencies.push(ms(start));
  }
  await messages.close();
  await loop;
  return latencies;
}

async function scalerRoundTrips(nc: NatsConnection, store: JetStreamEventStore, count: number): Promise<number[]> {
  const ref = (c: string) => ({ containerId: c, nodeId: 'bn1', walletId: 'bw1', functionId: 'bf1' });
  const sample = (c: string, seq: number): NewEvent => {
    const windowEndMs = Date.now();
    return {
      id: `${c}-${seq}`, type: 'ResourceSampled',
      data: { sampleId: `${c}-${seq}`, ...ref(c), seq, windowStartMs: windowEndMs - 1000, windowEndMs, cpuNanos: 1_000_000_000,
        memoryBytesAvg: 100 * MiB, memoryBytesMax: 100 * MiB, cpuLimitMillis: 1000, memoryLimitBytes: 512 * MiB, final: false },
    };
  };
  const latencies: number[] = [];
  for (let i = 0; i < count; i++) {
    const c = `bc${i}`;
    await store.append(`container-${c}`, [{ id: `started-${c}`, type: 'ContainerStarted', data: {
      ...ref(c), dockerId: `d${c}`, image: 'mesh/task-base:latest', cpuMillis: 1000, memoryBytes: 512 * MiB, cpuMaxMillis: 4000, cpuMinMillis: 250, coldStartMs: 1, startedAtMs: Date.now() } }], 'no_stream');
    // First saturated sample: the scaler loads the container (first sight) and waits for a second one.
    await store.append(`usage-${c}`, [sample(c, 1)], 'no_stream');
    const decided = firstMessage(nc, `mesh.events.scaling.${c}`);
    const start = process.hrtime.bigint();
    await store.append(`usage-${c}`, [sample(c, 2)], 0);
    await decided;
    latencies.push(ms(start));
    if (process.env.SCALER_BENCH_DEBUG) require("fs").appendFileSync(process.env.SCALER_BENCH_DEBUG, `trial ${i}: ${ms(start).toFixed(2)} ms\n`);
  }
  return latencies;
}

export async function run(log: (line: string) => void): Promise<BenchResult[]> {
  const reaction = staircaseReactions();
  log(`staircase (pure decider): a rise is followed after ${reaction.rise} samples, a fall after ${reaction.fall}`);

  const server = await NatsServerProcess.start();
  const nc = await server.connect('bench-scaler');
  const service = await startService(ScalerService, { NATS_URL: server.url, LOG_LEVEL: 'error' });
  try {
    const store = await JetStreamEventStore.connect(nc);
    log(`raw JetStream publish -> durable consumer -> publish round trip x${TRIALS}`);
    const raw = await rawRoundTrips(nc, TRIALS);
    log(`scaler: deciding sample appended -> ScalingDecided recorded x${TRIALS}`);
    const ours = await scalerRoundTrips(nc, store, TRIALS).catch((err) => {
      log(`scaler round trips failed: ${err}`);
      throw err;
    });
    const [rawP50, rawP99, oursP50, oursP99] = [percentile(raw, 50), percentile(raw, 99), percentile(ours, 50), percentile(ours, 99)];
    const intervalMs = 1000;
    return [
      { name: 'staircase rise -> allocation follows', value: reaction.rise, unit: 'samples', goal: `<= ${DEFAULT_POLICY.scaleUpSamples + 1} samples (reference: 20-30 s)`, met: reaction.rise <= DEFAULT_POLICY.scaleUpSamples + 1 },
      { name: 'staircase fall -> allocation follows', value: reaction.fall, unit: 'samples', goal: `<= ${DEFAULT_POLICY.scaleDownSamples + 2} samples (reference: ~60 s)`, met: reaction.fall <= DEFAULT_POLICY.scaleDownSamples + 2 },
      { name: 'sample -> ScalingDecided, p50', value: oursP50, unit: 'ms', baseline: { name: 'JetStream round trip p50', value: rawP50 }, goal: `< 10% of a ${intervalMs} ms sample interval`, met: oursP50 < intervalMs / 10 },
      { name: 'sample -> ScalingDecided, p99', value: oursP99, unit: 'ms', baseline: { name: 'JetStream round trip p99', value: rawP99 }, goal: `< 10% of a ${intervalMs} ms sample interval`, met: oursP99 < intervalMs / 10 },
    ];
  } finally {
    const dbg = (line: string) => process.env.SCALER_BENCH_DEBUG && require('fs').appendFileSync(process.env.SCALER_BENCH_DEBUG, `${line}\n`);
    dbg('stopping');
    if (process.env.SCALER_BENCH_DEBUG) {
      const transport = (service.app as any).serverInstance;
      const orig = transport.close.bind(transport);
      transport.close = async () => {
        dbg('transport.close start');
        transport.closing = true;
        for (const sub of transport.subscriptions) sub.unsubscribe();
        dbg('subs unsubscribed');
        for (const [i, m] of transport.consumers.entries()) { await m.close().catch(() => undefined); dbg(`consumer ${i} closed`); }
        for (const [i, l] of transport.loops.entries()) { await l; dbg(`loop ${i} done`); }
        void orig;
      };
    }
    await service.app.close();
    dbg('app closed');
    await service.store.close();
    dbg('store closed');
    await service.nc.drain();
    dbg('drained');
    await nc.close();
    await server.dispose();
  }
}
