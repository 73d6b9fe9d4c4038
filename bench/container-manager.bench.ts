/**
 * Container-manager against the real Docker engine, each figure beside a raw Docker baseline
 * measured in the same run with the same image and sandbox options:
 * - cold start: TaskDispatched appended -> script running (ExecutionStarted.startedAtMs), next to a
 *   raw `docker run` (create + attach + start until the command's first output byte);
 * - warm start: same, reusing the warm container, next to a raw `docker exec` (first output byte);
 * - abort: StandingChanged(suspended) appended -> container stopped (ContainerStopped.stoppedAtMs);
 * - resize: ScalingDecided appended -> limits applied (ContainerResized.appliedAtMs);
 * - sampling cost: process CPU time of the container-manager (process.cpuUsage) with 50 idle containers
 *   sampled at 1 Hz, as % of one core.
 * Goals: cold <= 1.3x raw run, warm <= 1.3x raw exec, abort < 1000 ms, sampling < 5% of a core.
 */
import Docker from 'dockerode';
import { setTimeout as sleep } from 'node:timers/promises';
import { messageOf } from '@mesh/common';
import { PassThrough } from 'node:stream';
import { randomBytes } from 'node:crypto';
import {
  ContainerResized,
  ContainerStarted,
  ContainerStopped,
  eventOf,
  ExecutionStarted,
  isEvent,
  ScalingDecided,
  StandingChanged,
  streamName,
  TaskDispatched,
  type EventData,
  type EventDefinition,
  type RecordedEvent,
  type RecordedOf,
} from '@mesh/contracts';
import type { EventStore } from '@mesh/eventstore/port';
import { JetStreamEventStore } from '@mesh/eventstore';
import { startService } from '@mesh/runtime';
import { NatsServerProcess, suspensionData } from '@mesh/testing';
import { ContainerManagerService } from '../apps/container-manager/src/main';
import { containerCreateOptions, LABEL } from '../apps/container-manager/src/docker/sandbox';
import type { BenchResult } from './run';
import { median, pollUntil } from './support';

const IMAGE = process.env.MESH_BASE_IMAGE ?? 'mesh/task-base:latest';
const RUNS = Number(process.env.BENCH_RUNS ?? 11);
const IDLE_CONTAINERS = Number(process.env.BENCH_IDLE_CONTAINERS ?? 50);
const SAMPLING_SECONDS = Number(process.env.BENCH_SAMPLING_SECONDS ?? 10);
const MiB = 1024 * 1024;

const rid = (p: string) => `${p}${randomBytes(5).toString('hex')}`;

function waitFor<D extends EventDefinition>(store: EventStore, stream: string, definition: D, timeoutMs = 30_000): Promise<RecordedOf<D>> {
  return pollUntil(
    async () => (await store.read(stream)).find((e): e is RecordedOf<D> => isEvent(e, definition)),
    timeoutMs,
    `${definition.type} in ${stream}`,
  );
}

function waitForTerminal(store: EventStore, executionId: string): Promise<RecordedEvent> {
  return pollUntil(
    async () => (await store.read(streamName('execution', executionId))).find((e) => /^Execution(Succeeded|Failed|TimedOut|Aborted)$/.test(e.type)),
    30_000,
    `the end of execution ${executionId}`,
  );
}

function firstByte(stream: NodeJS.ReadableStream): Promise<void> {
  return new Promise((resolve, reject) => {
    stream.once('data', () => resolve());
    stream.once('error', reject);
  });
}

/** Raw `docker run`: create with the same sandbox, attach, start, until the first output byte. */
async function rawRun(docker: Docker, nodeId: string): Promise<number> {
  const options = containerCreateOptions({
    nodeId,
    containerId: rid('raw'),
    walletId: 'raw',
    functionId: 'raw',
    image: IMAGE,
    cpuMillis: 1000,
    memoryBytes: 128 * MiB,
    network: undefined,
    pidsLimit: 256,
    workTmpfsBytes: 256 * MiB,
    user: '1000:1000',
  });
  const t0 = performance.now();
  const container = await docker.createContainer({ ...options, Entrypoint: ['bash'], Cmd: ['-c', 'printf R'], AttachStdout: true, Tty: false });
  const stream = await container.attach({ stream: true, stdout: true, stderr: true });
  const out = new PassThrough();
  docker.modem.demuxStream(stream, out, new PassThrough());
  const first = firstByte(out);
  await container.start();
  await first;
  const ms = performance.now() - t0;
  await container.remove({ force: true });
  return ms;
}

/** Raw `docker exec` into a running container, until the first output byte. */
async function rawExec(docker: Docker, dockerId: string): Promise<number> {
  const container = docker.getContainer(dockerId);
  const t0 = performance.now();
  const exec = await container.exec({ Cmd: ['bash', '-c', 'printf R'], AttachStdout: true, AttachStderr: true, AttachStdin: true });
  const stream = await exec.start({ hijack: true, stdin: true });
  const out = new PassThrough();
  docker.modem.demuxStream(stream, out, new PassThrough());
  const first = firstByte(out);
  stream.end();
  await first;
  const ms = performance.now() - t0;
  stream.destroy();
  return ms;
}

type Dispatch = EventData<typeof TaskDispatched>;

function dispatchData(nodeId: string, walletId: string, functionId: string, script: string): Dispatch {
  const taskId = rid('t');
  return {
    taskId,
    functionId,
    walletId,
    attempt: 1,
    executionId: `${taskId}-1`,
    nodeId,
    function: {
      functionId,
      version: 1,
      image: IMAGE,
      script,
      cpuMinMillis: 100,
      cpuMaxMillis: 2000,
      cpuInitialMillis: 1000,
      memoryBytes: 128 * MiB,
      timeoutMs: 120_000,
      network: false,
      maxAttempts: 1,
    },
    input: { inline: '' },
    dispatchedAtMs: Date.now(),
  };
}

/** Appends a dispatch; returns ms from just before the append to ExecutionStarted.startedAtMs. */
async function timedDispatch(store: EventStore, d: Dispatch): Promise<{ ms: number; containerId: string }> {
  const t0 = Date.now();
  await store.append(streamName('task', d.taskId), [eventOf(TaskDispatched, `dispatch-${d.executionId}`, { ...d, dispatchedAtMs: t0 })], 'any');
  const { data } = await waitFor(store, streamName('execution', d.executionId), ExecutionStarted);
  return { ms: data.startedAtMs - t0, containerId: data.containerId };
}

export async function run(log: (line: string) => void): Promise<BenchResult[]> {
  const docker = new Docker({ socketPath: process.env.DOCKER_SOCKET ?? '/var/run/docker.sock' });
  await docker.ping().catch((err: unknown) => {
    throw new Error(`Docker engine is not answering (${messageOf(err)}). Run: bash infra/local/provision.sh docker`, { cause: err });
  });
  const nodeId = rid('bench');
  const server = await NatsServerProcess.start();
  const running = await startService(ContainerManagerService, {
    NATS_URL: server.url,
    NODE_ID: nodeId,
    LOG_LEVEL: 'warn',
    SAMPLE_INTERVAL_MS: '1000',
    IDLE_TIMEOUT_MS: '600000',
  });
  // The bench plays the scheduler, the scaler and the credit-manager (TaskDispatched, ScalingDecided,
  // StandingChanged): the service's own store may only write the container-manager's categories.
  const store = await JetStreamEventStore.connect(running.nc);
  try {
    // Warm the engine and the image cache on both paths first.
    for (let i = 0; i < 2; i++) await rawRun(docker, nodeId);
    await timedDispatch(store, dispatchData(nodeId, rid('w'), rid('f'), 'true'));

    log(`cold and warm starts, ${RUNS} runs each, alternating ours and raw`);
    const cold: number[] = [];
    const rawRuns: number[] = [];
    const warm: number[] = [];
    const rawExecs: number[] = [];
    const walletId = rid('w');
    for (let i = 0; i < RUNS; i++) {
      const functionId = rid('f');
      const first = dispatchData(nodeId, walletId, functionId, 'true');
      const c = await timedDispatch(store, first);
      cold.push(c.ms);
      await waitForTerminal(store, first.executionId);
      rawRuns.push(await rawRun(docker, nodeId));
      const second = dispatchData(nodeId, walletId, functionId, 'true');
      const w = await timedDispatch(store, second);
      if (w.containerId !== c.containerId) throw new Error('the warm dispatch did not reuse the container');
      warm.push(w.ms);
      await waitForTerminal(store, second.executionId);
      const started = (await waitFor(store, streamName('container', c.containerId), ContainerStarted)).data;
      rawExecs.push(await rawExec(docker, started.dockerId));
    }
    log(`cold ${cold.map((x) => x.toFixed(0)).join(' ')} | raw run ${rawRuns.map((x) => x.toFixed(0)).join(' ')}`);
    log(`warm ${warm.map((x) => x.toFixed(0)).join(' ')} | raw exec ${rawExecs.map((x) => x.toFixed(1)).join(' ')}`);

    log('resize latency');
    const resize: number[] = [];
    const applyMs: number[] = [];
    {
      const fn = rid('f');
      const d = dispatchData(nodeId, walletId, fn, 'sleep 30');
      const { containerId } = await timedDispatch(store, d);
      for (let i = 0; i < RUNS; i++) {
        const decisionId = `scale-${containerId}-${i + 1}`;
        const toCpuMillis = i % 2 === 0 ? 500 : 1500;
        const t0 = Date.now();
        await store.append(
          streamName('scaling', containerId),
          [
            eventOf(ScalingDecided, decisionId, {
              decisionId,
              containerId,
              nodeId,
              walletId,
              functionId: fn,
              fromCpuMillis: 1000,
              toCpuMillis,
              fromMemoryBytes: 128 * MiB,
              toMemoryBytes: 128 * MiB,
              reason: 'scale-up',
              basedOnSampleSeqs: [1],
              decidedAtMs: t0,
            }),
          ],
          'any',
        );
        const deadline = Date.now() + 10_000;
        for (;;) {
          const r = (await store.read(streamName('container', containerId))).find(
            (e): e is RecordedOf<typeof ContainerResized> => isEvent(e, ContainerResized) && e.data.decisionId === decisionId,
          );
          if (r) {
            const data = r.data;
            resize.push(data.appliedAtMs - t0);
            applyMs.push(data.applyMs);
            break;
          }
          if (Date.now() > deadline) throw new Error(`decision ${decisionId} not applied`);
          await sleep(5);
        }
      }
    }

    log('abort latency (suspension -> container stopped)');
    const abort: number[] = [];
    for (let i = 0; i < Math.min(RUNS, 5); i++) {
      const w = rid('w');
      const d = dispatchData(nodeId, w, rid('f'), 'while :; do :; done');
      const { containerId } = await timedDispatch(store, d);
      const t0 = Date.now();
      await store.append(streamName('standing', w), [eventOf(StandingChanged, rid('st'), suspensionData(w, { eventId: rid('c'), revision: 1 }, t0))], 'any');
      const stopped = await waitFor(store, streamName('container', containerId), ContainerStopped);
      abort.push(stopped.data.stoppedAtMs - t0);
    }

    log(`sampling cost: ${IDLE_CONTAINERS} idle containers at 1 Hz for ${SAMPLING_SECONDS} s`);
    const idleWallet = rid('w');
    const idleStarts: string[] = [];
    for (let i = 0; i < IDLE_CONTAINERS; i++) {
      const d = dispatchData(nodeId, idleWallet, `f${i}${rid('')}`, 'true');
      await timedDispatch(store, d);
      idleStarts.push(d.executionId);
    }
    for (const id of idleStarts) await waitForTerminal(store, id);
    await sleep(1500);
    const cpu0 = process.cpuUsage();
    const wall0 = performance.now();
    await sleep(SAMPLING_SECONDS * 1000);
    const cpu = process.cpuUsage(cpu0);
    const wallMs = performance.now() - wall0;
    const samplingPct = ((cpu.user + cpu.system) / 1000 / wallMs) * 100;

    /** A start (p50) against the Docker call it wraps (p50): at most 1.3 times as long. */
    const startVsDocker = (kind: 'cold' | 'warm', ours: number[], call: 'run' | 'exec', raw: number[]): BenchResult => ({
      name: `${kind} start: dispatch -> script running (p50)`,
      value: median(ours),
      unit: 'ms',
      baseline: { name: `docker ${call}`, value: median(raw) },
      goal: `<= 1.3x raw ${call}`,
      met: median(ours) / median(raw) <= 1.3,
    });
    return [
      startVsDocker('cold', cold, 'run', rawRuns),
      startVsDocker('warm', warm, 'exec', rawExecs),
      {
        name: 'resize: decision -> limits applied (p50)',
        value: median(resize),
        unit: 'ms',
        baseline: { name: 'docker update alone', value: median(applyMs) },
      },
      { name: 'abort: suspension -> container stopped (max)', value: Math.max(...abort), unit: 'ms', goal: '< 1000 ms', met: Math.max(...abort) < 1000 },
      { name: `sampling ${IDLE_CONTAINERS} containers at 1 Hz: process CPU`, value: samplingPct, unit: '% of a core', goal: '< 5%', met: samplingPct < 5 },
    ];
  } finally {
    await running.stop().catch(() => undefined);
    const own = await docker.listContainers({ all: true, filters: { label: [`${LABEL.node}=${nodeId}`] } }).catch(() => []);
    await Promise.all(
      own
        .filter((c) => c.Labels[LABEL.node] === nodeId)
        .map((c) =>
          docker
            .getContainer(c.Id)
            .remove({ force: true })
            .catch(() => undefined),
        ),
    );
    await server.dispose();
  }
}
