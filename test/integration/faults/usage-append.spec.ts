import { setTimeout as sleep } from 'node:timers/promises';
import type Docker from 'dockerode';
import type { NatsConnection } from 'nats';
import { ContainerStarted, ContainerStopped, ExecutionStarted, streamName } from '@mesh/contracts';
import { createEventStore } from '@mesh/eventstore/factory';
import type { EventStore } from '@mesh/eventstore/port';
import { eventually, NatsServerProcess, ServiceProcess } from '@mesh/testing';
import { findCgroupPaths, readCgroup } from '../../../apps/container-manager/src/docker/cgroup';
import { dispatch, randomId, removeNodeContainers, requireDocker, samplesOf, terminalOf, waitForEnd, waitForEvent } from '../container-manager/harness';
import { NatsPause } from './nats-pause';

/** How long nats-server is frozen: longer than a few sample intervals, within the brief's 2-5 s of a NATS hiccup. */
const PAUSE_MS = 5000;
const SAMPLE_INTERVAL_MS = 250;

/**
 * No free usage: a sample is recorded exactly once whatever NATS does. A real container-manager
 * process runs a CPU-busy task against a real nats-server that is frozen (SIGSTOP) for a few
 * seconds in the middle: the process rides it out (no exit), the samples stay contiguous, and the
 * CPU of the outage is billed once, in the window recorded when the server is back.
 */
describe('faults: NATS frozen while a task burns CPU', () => {
  let server: NatsServerProcess;
  let docker: Docker;
  let nc: NatsConnection;
  let store: EventStore;
  let proc: ServiceProcess | undefined;
  let pause: NatsPause | undefined;
  const nodeId = randomId('fltusg');
  const env = {
    NODE_ID: nodeId,
    SAMPLE_INTERVAL_MS: String(SAMPLE_INTERVAL_MS),
    IDLE_TIMEOUT_MS: '3000',
    NODE_CPU_MILLIS: '2000',
    NODE_MEMORY_BYTES: String(4 * 1024 ** 3),
  };

  beforeAll(async () => {
    docker = await requireDocker();
    server = await NatsServerProcess.start();
    pause = NatsPause.of(server);
    nc = await server.connect();
    store = await createEventStore({ EVENT_STORE: 'jetstream', EVENT_REPLICAS: 1 } as never, nc);
  }, 60_000);

  afterAll(async () => {
    pause?.resume();
    await proc?.stop('SIGKILL');
    if (docker) await removeNodeContainers(docker, [nodeId]);
    await store?.close();
    await nc?.close();
    await server?.dispose();
  }, 60_000);

  it('rides out a frozen nats-server: samples contiguous, no duplicate, Σ cpuNanos = the cgroup counter, the process never exits', async () => {
    proc = ServiceProcess.start('container-manager', { NATS_URL: server.url, ...env });
    await proc.healthy(server.url, 90_000);
    // About 8 s of pure CPU: the pause falls well inside it.
    const d = await dispatch(store, {
      nodeId,
      walletId: randomId('w'),
      functionId: randomId('f'),
      timeoutMs: 60_000,
      script: 'end=$((SECONDS+8)); while [ $SECONDS -lt $end ]; do :; done; echo done',
    });
    const started = (await waitForEvent(store, streamName('execution', d.executionId), ExecutionStarted)).data;
    const container = (await waitForEvent(store, streamName('container', started.containerId), ContainerStarted)).data;
    const paths = findCgroupPaths(container.dockerId);
    expect(paths).toBeDefined();
    await eventually(async () => (await samplesOf(store, container.containerId)).length >= 2, 20_000, 'samples before the pause');

    pause!.pause();
    try {
      await sleep(PAUSE_MS);
    } finally {
      pause!.resume();
    }

    expect(terminalOf(await waitForEnd(store, d.executionId, 60_000)).type).toBe('ExecutionSucceeded');
    const counterAfterTask = (await readCgroup(paths!))!.cpuNanosTotal;
    await waitForEvent(store, streamName('container', container.containerId), ContainerStopped, 30_000);

    const samples = await samplesOf(store, container.containerId);
    expect(samples.map((s) => s.seq)).toEqual(samples.map((_, i) => i + 1));
    expect(new Set(samples.map((s) => s.sampleId)).size).toBe(samples.length);
    for (let i = 1; i < samples.length; i++) expect(samples[i].windowStartMs).toBe(samples[i - 1].windowEndMs);
    const last = samples[samples.length - 1];
    expect(last.final).toBe(true);
    expect(samples.reduce((sum, s) => sum + s.cpuNanos, 0)).toBe(last.cpuNanosTotal);
    // The last reading was taken after the task ended: it holds all the task's CPU (plus the idle sleep's crumbs).
    expect(last.cpuNanosTotal).toBeGreaterThanOrEqual(counterAfterTask);
    expect(counterAfterTask).toBeGreaterThan(2_000_000_000);
    // The outage is one merged window (the ticks while the store did not answer were folded into it), not lost ones.
    expect(Math.max(...samples.map((s) => s.windowEndMs - s.windowStartMs))).toBeGreaterThanOrEqual(PAUSE_MS / 2);
    // The process rode it out.
    expect(proc.child.exitCode).toBeNull();
    expect(proc.child.signalCode).toBeNull();
  }, 180_000);
});
