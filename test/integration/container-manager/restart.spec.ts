import type Docker from 'dockerode';
import type { NatsConnection } from 'nats';
import { ContainerStarted, ContainerStopped, ExecutionFailed, ExecutionStarted, streamName, type EventData } from '@mesh/contracts';
import { createEventStore } from '@mesh/eventstore/factory';
import type { EventStore } from '@mesh/eventstore/port';
import { eventually, NatsServerProcess, ServiceProcess } from '@mesh/testing';
import { dataOf, dispatch, randomId, removeNodeContainers, requireDocker, samplesOf, startNode, waitForEnd, waitForEvent, type NodeHandle } from './harness';

/**
 * Restart safety for real: the container-manager runs as its own process and is killed (SIGKILL,
 * no cleanup, no events); the containers keep running. The node started again in its place adopts
 * the idle container (warm, sampling resumes without double counting) and fails the execution that
 * was running (agent-restart, retryable), stopping its container.
 */
describe('container-manager: killed and restarted', () => {
  let server: NatsServerProcess;
  let docker: Docker;
  let nc: NatsConnection;
  let store: EventStore;
  let proc: ServiceProcess | undefined;
  let node: NodeHandle | undefined;
  const nodeId = randomId('cmrst');
  const env = { NODE_ID: nodeId, SAMPLE_INTERVAL_MS: '250', IDLE_TIMEOUT_MS: '60000', NODE_CPU_MILLIS: '2000', NODE_MEMORY_BYTES: String(4 * 1024 ** 3) };

  beforeAll(async () => {
    docker = await requireDocker();
    server = await NatsServerProcess.start();
    nc = await server.connect();
    store = await createEventStore({ EVENT_STORE: 'jetstream', EVENT_REPLICAS: 1 } as never, nc);
  }, 60_000);

  afterAll(async () => {
    await proc?.stop('SIGKILL');
    await node?.running.stop().catch(() => undefined);
    if (docker) await removeNodeContainers(docker, [nodeId]);
    await store?.close();
    await nc?.close();
    await server?.dispose();
  }, 60_000);

  async function startedOf(executionId: string): Promise<EventData<typeof ExecutionStarted>> {
    return (await waitForEvent(store, streamName('execution', executionId), ExecutionStarted)).data;
  }

  it('adopts idle containers (warm, sampling resumes without double counting) and fails interrupted executions', async () => {
    proc = ServiceProcess.start('container-manager', { NATS_URL: server.url, ...env });
    await proc.healthy(server.url, 90_000);
    const wallet = randomId('w');
    const fnIdle = randomId('f');
    const fnBusy = randomId('f');
    const first = await dispatch(store, { nodeId, walletId: wallet, functionId: fnIdle, script: 'echo one' });
    await waitForEnd(store, first.executionId);
    const idle = await startedOf(first.executionId);
    const busy = await dispatch(store, { nodeId, walletId: wallet, functionId: fnBusy, script: 'sleep 60', timeoutMs: 60_000 });
    const busyStarted = await startedOf(busy.executionId);
    await eventually(async () => (await samplesOf(store, idle.containerId)).length >= 2, 10_000, 'samples before the kill');

    // Killed: no cleanup, no events; the containers keep running.
    expect(await proc.stop('SIGKILL')).toBeNull();
    const seqBefore = (await samplesOf(store, idle.containerId)).length;

    node = await startNode(server, nodeId);
    const end = await waitForEnd(store, busy.executionId);
    expect(dataOf(end, ExecutionFailed)).toMatchObject({ reason: 'agent-restart', retryable: true, containerId: busyStarted.containerId });
    expect((await waitForEvent(store, streamName('container', busyStarted.containerId), ContainerStopped)).data).toMatchObject({ reason: 'orphan' });

    // The idle one was adopted: the next task of that (wallet, function) runs warm in it.
    const again = await dispatch(store, { nodeId, walletId: wallet, functionId: fnIdle, script: 'echo two' });
    expect(await startedOf(again.executionId)).toMatchObject({ warm: true, containerId: idle.containerId });
    expect((await waitForEnd(store, again.executionId)).map((e) => e.type)).toEqual(['ExecutionStarted', 'ExecutionSucceeded']);

    await eventually(async () => (await samplesOf(store, idle.containerId)).length > seqBefore + 1, 10_000, 'samples after the restart');
    const samples = await samplesOf(store, idle.containerId);
    expect(samples.map((s) => s.seq)).toEqual(samples.map((_, i) => i + 1));
    for (let i = 1; i < samples.length; i++) {
      expect(samples[i].windowStartMs).toBe(samples[i - 1].windowEndMs);
      expect(samples[i].cpuNanosTotal! - samples[i - 1].cpuNanosTotal!).toBe(samples[i].cpuNanos);
    }
    const started = dataOf(await store.read(streamName('container', idle.containerId)), ContainerStarted);
    expect(started.nodeId).toBe(nodeId);
  }, 180_000);

  it('on a clean shutdown fails the running execution (agent-restart), stops every container (shutdown), then leaves', async () => {
    const other = randomId('cmstop');
    const stopping = await startNode(server, other);
    try {
      const walletId = randomId('w');
      const running = await dispatch(store, { nodeId: other, walletId, functionId: randomId('f'), script: 'sleep 60', timeoutMs: 60_000 });
      const started = await startedOf(running.executionId);
      await stopping.running.stop();
      expect(dataOf(await waitForEnd(store, running.executionId), ExecutionFailed)).toMatchObject({
        reason: 'agent-restart',
        retryable: true,
        stderrTail: 'the container-manager stopped while the task ran',
      });
      expect(dataOf(await store.read(streamName('container', started.containerId)), ContainerStopped)).toMatchObject({ reason: 'shutdown' });
      expect((await samplesOf(store, started.containerId)).at(-1)?.final).toBe(true);
      expect((await store.read(streamName('node', other))).map((e) => e.type)).toEqual(['NodeRegistered', 'NodeLeft']);
    } finally {
      await stopping.running.stop().catch(() => undefined);
      await removeNodeContainers(docker, [other]);
    }
  }, 60_000);
});
