/**
 * Scaler reaction time from a usage step to the ScalingDecided event:
 *  - in samples, with the pure decider on the reference system's stress staircase (1 -> 2 -> 3 -> 2
 *    -> 1 cores, usage = min(demand, allocation)), decisions applied before the next sample;
 *  - in ms end to end on a real nats-server: the deciding sample appended to the usage stream ->
 *    ScalingDecided recorded in scaling-<containerId>, beside a raw JetStream publish -> durable
 *    consumer -> JetStream publish round trip measured in the same run.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { AckPolicy, DeliverPolicy, headers as natsHeaders, type NatsConnection } from 'nats';
import { EVENTS_STREAM, listScaledContainers, type NewEvent } from '@mesh/contracts';
import { JetStreamEventStore } from '@mesh/eventstore';
import { MeshClient, startService } from '@mesh/runtime';
import { NatsServerProcess, containerStartedEvent, resourceSampledEvent } from '@mesh/testing';
import { DEFAULT_POLICY } from '../apps/scaler/src/domain/scaling-policy';
import { reactionSamples, simulate, staircase } from '../apps/scaler/test/simulation';
import { ScalerService } from '../apps/scaler/src/main';
import type { BenchResult } from './run';
import { firstMessage, msSince, percentile, pollUntil } from './support';

const TRIALS = Number(process.env.SCALER_BENCH_TRIALS ?? 200);
const THROTTLE_TRIALS = Math.max(1, Math.floor(TRIALS / 4));
const STEP_SAMPLES = 20;
const MiB = 1024 * 1024;

/** Until each named scaler consumer has handled the event at the given position (bounded). */
async function settle(nc: NatsConnection, positions: Record<string, bigint>): Promise<void> {
  const client = new MeshClient(nc);
  await pollUntil(
    async () => {
      const health = (await client.requestRaw('mesh.api.scaler.health', {})) as { positions: Record<string, string> };
      return Object.entries(positions).every(([consumer, p]) => BigInt(health.positions[consumer] ?? '0') >= p) || undefined;
    },
    10_000,
    'the scaler consumers at the appended positions',
    20,
  );
}

/**
 * Per step of the staircase: samples from the step to its ScalingDecided (the deciding sample
 * included), and until the allocation follows (throttling <= boundary after a rise, allocation within
 * the scale-down band after a fall). Worst step of each direction.
 */
function staircaseReactions() {
  const { demandAt, steps } = staircase(STEP_SAMPLES);
  const trace = simulate(DEFAULT_POLICY, demandAt, steps.length * STEP_SAMPLES);
  const worst = { riseDecided: 0, riseFollows: 0, fallDecided: 0, fallFollows: 0 };
  steps.forEach((step, i) => {
    if (i === 0) return;
    const end = step.fromSeq + STEP_SAMPLES;
    const rising = step.demandCpuMillis > steps[i - 1].demandCpuMillis;
    const decidedAt = trace.find(
      (s) => s.seq >= step.fromSeq && s.seq < end && s.decision && s.decision.data.toCpuMillis !== s.decision.data.fromCpuMillis,
    )?.seq;
    const decided = decidedAt === undefined ? Infinity : decidedAt - step.fromSeq + 1;
    const follows = reactionSamples(trace, step.fromSeq, end, rising, DEFAULT_POLICY.boundaryMillis) ?? Infinity;
    if (rising) Object.assign(worst, { riseDecided: Math.max(worst.riseDecided, decided), riseFollows: Math.max(worst.riseFollows, follows) });
    else Object.assign(worst, { fallDecided: Math.max(worst.fallDecided, decided), fallFollows: Math.max(worst.fallFollows, follows) });
  });
  return worst;
}

async function rawRoundTrips(nc: NatsConnection, count: number): Promise<number[]> {
  const jsm = await nc.jetstreamManager();
  await jsm.consumers.add(EVENTS_STREAM, {
    durable_name: 'bench_raw',
    filter_subject: 'mesh.events.test.ping',
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.New,
  });
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
    latencies.push(msSince(start));
  }
  await messages.close();
  await loop;
  return latencies;
}

async function scalerRoundTrips(nc: NatsConnection, store: JetStreamEventStore, count: number): Promise<{ latencies: number[]; lastUsagePosition: bigint }> {
  const ref = (c: string) => ({ containerId: c, nodeId: 'bn1', walletId: 'bw1', functionId: 'bf1' });
  const sample = (c: string, seq: number): NewEvent =>
    resourceSampledEvent(ref(c), {
      seq,
      windowEndMs: Date.now(),
      cpuNanos: 1_000_000_000,
      memoryBytes: 100 * MiB,
      cpuLimitMillis: 1000,
      memoryLimitBytes: 512 * MiB,
    });
  const latencies: number[] = [];
  let lastUsagePosition = 0n;
  for (let i = 0; i < count; i++) {
    const c = `bc${i}`;
    await store.append(`container-${c}`, [containerStartedEvent(ref(c), { cpuMillis: 1000, memoryBytes: 512 * MiB })], 'no_stream');
    // First saturated sample: the scaler loads the container (first sight) and waits for a second one.
    await store.append(`usage-${c}`, [sample(c, 1)], 'no_stream');
    const decided = firstMessage(nc, `mesh.events.scaling.${c}`);
    const start = process.hrtime.bigint();
    ({ position: lastUsagePosition } = await store.append(`usage-${c}`, [sample(c, 2)], 0));
    await decided;
    latencies.push(msSince(start));
  }
  return { latencies, lastUsagePosition };
}

/** Standing -> overdrawn appended -> throttle ScalingDecided recorded, one wallet and container per trial. */
async function throttleRoundTrips(nc: NatsConnection, store: JetStreamEventStore, count: number, settleAt: Record<string, bigint>): Promise<number[]> {
  const client = new MeshClient(nc);
  const latencies: number[] = [];
  for (let i = 0; i < count; i++) {
    const [c, w] = [`tc${i}`, `tw${i}`];
    const ref = { containerId: c, nodeId: 'bn1', walletId: w, functionId: 'bf1' };
    await store.append(`container-${c}`, [containerStartedEvent(ref, { cpuMillis: 2000, memoryBytes: 512 * MiB })], 'no_stream');
    const windowEndMs = Date.now();
    await store.append(
      `usage-${c}`,
      [resourceSampledEvent(ref, { seq: 1, windowEndMs, cpuNanos: 1_500_000_000, memoryBytes: 100 * MiB, cpuLimitMillis: 2000, memoryLimitBytes: 512 * MiB })],
      'no_stream',
    );
    // Until the scaler tracks the container (first sight loads it from the log).
    for (let polls = 0; ; polls++) {
      const { containers } = await client.request(listScaledContainers, { walletId: w });
      if (containers.some((x) => x.lastSampleSeq === 1)) break;
      if (polls > 500) throw new Error(`scaler never tracked ${c}`);
      await sleep(2);
    }
    const decided = firstMessage(nc, `mesh.events.scaling.${c}`);
    const start = process.hrtime.bigint();
    ({ position: settleAt.scaler_standing } = await store.append(
      `standing-${w}`,
      [
        {
          id: `standing-${w}-0`,
          type: 'StandingChanged',
          data: {
            walletId: w,
            from: 'normal',
            to: 'overdrawn',
            balance: '-0.01',
            currency: 'GRC',
            maxDebt: '0.5',
            minBalance: '0',
            policy: 'greedy',
            causeEventId: `cause-${w}`,
            causeRevision: 0,
            changedAtMs: Date.now(),
          },
        },
      ],
      'no_stream',
    ));
    await decided;
    latencies.push(msSince(start));
  }
  return latencies;
}

export async function run(log: (line: string) => void): Promise<BenchResult[]> {
  const reaction = staircaseReactions();
  log(
    `staircase (pure decider): rise decided after ${reaction.riseDecided} samples, followed after ${reaction.riseFollows}; fall decided after ${reaction.fallDecided}, followed after ${reaction.fallFollows}`,
  );

  const server = await NatsServerProcess.start();
  const nc = await server.connect('bench-scaler');
  const service = await startService(ScalerService, { NATS_URL: server.url, LOG_LEVEL: 'error' });
  const settleAt: Record<string, bigint> = {};
  try {
    const store = await JetStreamEventStore.connect(nc);
    log(`raw JetStream publish -> durable consumer -> publish round trip x${TRIALS}`);
    const raw = await rawRoundTrips(nc, TRIALS);
    log(`scaler: deciding sample appended -> ScalingDecided recorded x${TRIALS}`);
    const { latencies: ours, ...rest } = await scalerRoundTrips(nc, store, TRIALS);
    settleAt.scaler_usage = rest.lastUsagePosition;
    log(`scaler: StandingChanged(overdrawn) appended -> throttle ScalingDecided recorded x${THROTTLE_TRIALS}`);
    const throttle = await throttleRoundTrips(nc, store, THROTTLE_TRIALS, settleAt);
    const [rawP50, rawP99, oursP50, oursP99] = [percentile(raw, 50), percentile(raw, 99), percentile(ours, 50), percentile(ours, 99)];
    const intervalMs = 1000;
    return [
      {
        name: 'staircase rise -> ScalingDecided',
        value: reaction.riseDecided,
        unit: 'samples',
        goal: `<= ${DEFAULT_POLICY.scaleUpSamples} samples (reference: 20-30 s)`,
        met: reaction.riseDecided <= DEFAULT_POLICY.scaleUpSamples,
      },
      {
        name: 'staircase fall -> ScalingDecided',
        value: reaction.fallDecided,
        unit: 'samples',
        goal: `<= ${DEFAULT_POLICY.scaleDownSamples} samples (reference: ~60 s)`,
        met: reaction.fallDecided <= DEFAULT_POLICY.scaleDownSamples,
      },
      ...(
        [
          ['p50', oursP50, rawP50],
          ['p99', oursP99, rawP99],
        ] as const
      ).map(([p, ours, rawMs]) => ({
        name: `sample -> ScalingDecided, ${p}`,
        value: ours,
        unit: 'ms',
        baseline: { name: `JetStream round trip ${p}`, value: rawMs },
        goal: `< 10% of a ${intervalMs} ms sample interval`,
        met: ours < intervalMs / 10,
      })),
      {
        name: 'overdrawn -> throttle decision, p99',
        value: percentile(throttle, 99),
        unit: 'ms',
        baseline: { name: 'JetStream round trip p99', value: rawP99 },
        goal: '< 100 ms (sub-second throttle)',
        met: percentile(throttle, 99) < 100,
      },
    ];
  } finally {
    // Let the scaler finish the event it is handling: stopping mid-handler can hang the transport's close.
    await settle(nc, settleAt).catch((err) => log(`scaler did not settle: ${err}`));
    await service.stop();
    await nc.close();
    await server.dispose();
  }
}
