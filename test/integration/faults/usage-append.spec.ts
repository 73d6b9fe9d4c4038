import { setTimeout as sleep } from 'node:timers/promises';
import type Docker from 'dockerode';
import type { NatsConnection } from 'nats';
import { ContainerStarted, ContainerStopped, ExecutionFailed, ExecutionStarted, streamName, type EventData, type ResourceSampled } from '@mesh/contracts';
import { createEventStore } from '@mesh/eventstore/factory';
import type { EventStore } from '@mesh/eventstore/port';
import { eventually, NatsServerProcess, ServiceProcess } from '@mesh/testing';
import { findCgroupPaths, readCgroup } from '../../../apps/container-manager/src/docker/cgroup';
import { dataOf, dispatch, randomId, removeNodeContainers, requireDocker, samplesOf, terminalOf, waitForEnd, waitForEvent } from '../container-manager/harness';
import { NatsPause } from './nats-pause';

const SAMPLE_INTERVAL_MS = 250;
/** A NATS hiccup within the brief's 2-5 s: the append in flight is simply answered late. */
const SHORT_PAUSE_MS = 4000;
/** Longer than the JetStream publish timeout (5 s in the nats client): the append in flight times out and is retried with the same id. */
const LONG_PAUSE_MS = 8000;

/** Every sample written exactly once: seq 1..n, ids unique, windows tiling, Σ cpuNanos = the last counter reading. */
function expectExactlyOnce(samples: EventData<typeof ResourceSampled>[]): EventData<typeof ResourceSampled> {
  expect(samples.length).toBeGreaterThan(0);
  expect(samples.map((s) => s.seq)).toEqual(samples.map((_, i) => i + 1));
  expect(new Set(samples.map((s) => s.sampleId)).size).toBe(samples.length);
  for (let i = 1; i < samples.length; i++) expect(samples[i].windowStartMs).toBe(samples[i - 1].windowEndMs);
  const last = samples[samples.length - 1];
  expect(samples.reduce((sum, s) => sum + s.cpuNanos, 0)).toBe(last.cpuNanosTotal);
  return last;
}

/**
 * No free usage: a sample is recorded exactly once whatever NATS does. A real container-manager
 * process runs a CPU-busy task against a real nats-server that is frozen (SIGSTOP) in the middle.
 * Within USAGE_APPEND_RETRY_MS the process rides it out (no exit) and the CPU of the outage is
 * billed once, in the window recorded when the server is back; past it the process exits (fatal)
 * and the next process resumes from the last recorded counter.
 */
describe('faults: NATS frozen while a task burns CPU', () => {
  let server: NatsServerProcess;
  let docker: Docker;
  let nc: NatsConnection;
  let store: EventStore;
  let pause: NatsPause | undefined;
  const procs: ServiceProcess[] = [];
  const nodeIds: string[] = [];

  function startProcess(nodeId: string, extra: Record<string, string> = {}): ServiceProcess {
    const proc = ServiceProcess.start('container-manager', {
      NATS_URL: server.url,
      NODE_ID: nodeId,
      SAMPLE_INTERVAL_MS: String(SAMPLE_INTERVAL_MS),
      IDLE_TIMEOUT_MS: '3000',
      NODE_CPU_MILLIS: '2000',
      NODE_MEMORY_BYTES: String(4 * 1024 ** 3),
      ...extra,
    });
    procs.push(proc);
    return proc;
  }

  /** About `seconds` of pure CPU on a fresh node; resolves once it runs and has been sampled twice. */
  async function busyTask(nodeId: string, seconds: number) {
    const d = await dispatch(store, {
      nodeId,
      walletId: randomId('w'),
      functionId: randomId('f'),
      timeoutMs: 120_000,
      script: `end=$((SECONDS+${seconds})); while [ $SECONDS -lt $end ]; do :; done; echo done`,
    });
    const started = (await waitForEvent(store, streamName('execution', d.executionId), ExecutionStarted)).data;
    const container = (await waitForEvent(store, streamName('container', started.containerId), ContainerStarted)).data;
    await eventually(async () => (await samplesOf(store, container.containerId)).length >= 2, 20_000, 'samples before the pause');
    return { d, container };
  }

  async function frozenFor(ms: number): Promise<void> {
    pause!.pause();
    try {
      await sleep(ms);
    } finally {
      pause!.resume();
    }
  }

  beforeAll(async () => {
    docker = await requireDocker();
    server = await NatsServerProcess.start();
    pause = NatsPause.of(server);
    nc = await server.connect();
    store = await createEventStore({ EVENT_STORE: 'jetstream', EVENT_REPLICAS: 1 } as never, nc);
  }, 60_000);

  afterAll(async () => {
    pause?.resume();
    for (const proc of procs) await proc.stop('SIGKILL');
    if (docker) await removeNodeContainers(docker, nodeIds);
    await store?.close();
    await nc?.close();
    await server?.dispose();
  }, 60_000);

  for (const pauseMs of [SHORT_PAUSE_MS, LONG_PAUSE_MS]) {
    it(`rides out ${pauseMs} ms of frozen nats-server: samples exactly once, Σ cpuNanos = the cgroup counter, the process never exits`, async () => {
      const nodeId = randomId('fltusg');
      nodeIds.push(nodeId);
      const proc = startProcess(nodeId);
      await proc.healthy(server.url, 90_000);
      const { d, container } = await busyTask(nodeId, pauseMs / 1000 + 4);
      const paths = findCgroupPaths(container.dockerId);
      expect(paths).toBeDefined();

      await frozenFor(pauseMs);

      expect(terminalOf(await waitForEnd(store, d.executionId, 90_000)).type).toBe('ExecutionSucceeded');
      const counterAfterTask = (await readCgroup(paths!))!.cpuNanosTotal;
      await waitForEvent(store, streamName('container', container.containerId), ContainerStopped, 30_000);

      const samples = await samplesOf(store, container.containerId);
      const last = expectExactlyOnce(samples);
      expect(last.final).toBe(true);
      // The last reading was taken after the task ended: it holds all the task's CPU (plus the idle sleep's crumbs).
      expect(last.cpuNanosTotal).toBeGreaterThanOrEqual(counterAfterTask);
      expect(counterAfterTask).toBeGreaterThan(2_000_000_000);
      // The outage is one merged window (the ticks while the store did not answer were folded into it), not lost ones.
      expect(Math.max(...samples.map((s) => s.windowEndMs - s.windowStartMs))).toBeGreaterThanOrEqual(pauseMs / 2);
      // Past the publish timeout the append in flight was retried with the same id (by the event
      // store, which retries an unanswered append itself, or by the sampler after it), and the
      // process rode it out.
      expect(proc.child.exitCode).toBeNull();
      expect(proc.child.signalCode).toBeNull();
      await proc.stop();
    }, 240_000);
  }

  it('past USAGE_APPEND_RETRY_MS the process exits, and the next one resumes from the last recorded counter (no window lost or doubled)', async () => {
    const nodeId = randomId('fltusg');
    nodeIds.push(nodeId);
    const first = startProcess(nodeId, { USAGE_APPEND_RETRY_MS: '1000' });
    await first.healthy(server.url, 90_000);
    const { d, container } = await busyTask(nodeId, 60);

    // Frozen until the process gave up: its append in flight times out (5 s) after the 1 s bound.
    pause!.pause();
    let exitCode: number | null;
    try {
      exitCode = await first.exited;
    } finally {
      pause!.resume();
    }
    expect(exitCode).toBe(1);
    expect(first.logs).toMatch(/not recorded within USAGE_APPEND_RETRY_MS/);

    // The restarted node finds the busy container: the execution fails as agent-restart, the container is stopped with a closing sample.
    const second = startProcess(nodeId);
    await second.healthy(server.url, 90_000);
    const failed = dataOf(await waitForEnd(store, d.executionId, 60_000), ExecutionFailed);
    expect(failed).toMatchObject({ reason: 'agent-restart', retryable: true });
    expect((await waitForEvent(store, streamName('container', container.containerId), ContainerStopped, 60_000)).data.reason).toBe('orphan');
    const last = expectExactlyOnce(await samplesOf(store, container.containerId));
    expect(last.final).toBe(true);
    expect(last.cpuNanosTotal).toBeGreaterThan(1_000_000_000);
    await second.stop();
  }, 240_000);
});
