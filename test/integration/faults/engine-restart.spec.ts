import { setTimeout as sleep } from 'node:timers/promises';
import type { NatsConnection } from 'nats';
import { ContainerStarted, ContainerStopped, ExecutionFailed, ExecutionStarted, streamName } from '@mesh/contracts';
import { createEventStore } from '@mesh/eventstore/factory';
import type { EventStore } from '@mesh/eventstore/port';
import { NatsServerProcess } from '@mesh/testing';
import { BASE_IMAGE, dataOf, dispatch, randomId, startNode, waitForEnd, waitForEvent, type NodeHandle } from '../container-manager/harness';
import { SecondDockerd } from './second-dockerd';

/**
 * An engine restart is not blamed on the user. The container-manager runs against a PRIVATE
 * dockerd (the machine's shared engine runs other tests' containers): it is stopped (SIGTERM, as
 * `systemctl stop docker` does; without live-restore it kills every container) while a 10 s task
 * runs, and started again. The execution ends as a retryable infrastructure failure without an
 * exit code, never as the script's `exit-code` 137/143. A script that kills itself with SIGKILL on
 * the same engine still gets its own `exit-code` 137.
 */
describe('faults: the Docker engine stops while a task runs', () => {
  let server: NatsServerProcess;
  let engine: SecondDockerd;
  let node: NodeHandle | undefined;
  let nc: NatsConnection;
  let store: EventStore;
  const nodeId = randomId('fltdkr');

  beforeAll(async () => {
    server = await NatsServerProcess.start();
    nc = await server.connect();
    store = await createEventStore({ EVENT_STORE: 'jetstream', EVENT_REPLICAS: 1 } as never, nc);
    engine = await SecondDockerd.start();
    engine.loadImage(BASE_IMAGE);
    node = await startNode(server, nodeId, { DOCKER_SOCKET: engine.socket, IDLE_TIMEOUT_MS: '60000' });
  }, 120_000);

  afterAll(async () => {
    await node?.running.stop().catch(() => undefined);
    await engine?.dispose();
    await store?.close();
    await nc?.close();
    await server?.dispose();
  }, 120_000);

  for (const warm of [false, true]) {
    it(`${warm ? 'warm (docker exec)' : 'cold (first runner)'}: the engine stopped 3 s into a 10 s task is a retryable infrastructure failure, not exit 137`, async () => {
      const functionId = randomId('f');
      const walletId = randomId('w');
      if (warm) {
        const warmup = await dispatch(store, { nodeId, walletId, functionId, script: 'echo warm-up' });
        expect((await waitForEnd(store, warmup.executionId)).map((e) => e.type)).toContain('ExecutionSucceeded');
      }
      const d = await dispatch(store, { nodeId, walletId, functionId, timeoutMs: 60_000, script: 'sleep 10; echo done' });
      const started = (await waitForEvent(store, streamName('execution', d.executionId), ExecutionStarted)).data;
      expect(started.warm).toBe(warm);
      await sleep(3000);
      await engine.stop('SIGTERM');
      await engine.spawn();

      const failed = dataOf(await waitForEnd(store, d.executionId, 90_000), ExecutionFailed);
      expect(failed).toMatchObject({ reason: 'docker-error', retryable: true });
      expect(failed.exitCode).toBeUndefined();
      expect(failed.stderrTail).toMatch(/killed by the platform, not by the script/);
      expect((await waitForEvent(store, streamName('container', started.containerId), ContainerStopped, 60_000)).data.reason).toBe('error');
    }, 180_000);
  }

  it('a container removed from outside while its task runs is a retryable infrastructure failure', async () => {
    const d = await dispatch(store, { nodeId, walletId: randomId('w'), functionId: randomId('f'), timeoutMs: 60_000, script: 'sleep 10; echo done' });
    const started = (await waitForEvent(store, streamName('execution', d.executionId), ExecutionStarted)).data;
    const container = (await waitForEvent(store, streamName('container', started.containerId), ContainerStarted)).data;
    await engine.docker.getContainer(container.dockerId).remove({ force: true });
    const failed = dataOf(await waitForEnd(store, d.executionId, 60_000), ExecutionFailed);
    expect(failed).toMatchObject({ reason: 'docker-error', retryable: true });
    expect(failed.exitCode).toBeUndefined();
    expect(failed.stderrTail).toMatch(/killed by the platform, not by the script/);
  }, 120_000);

  it('a script that kills itself with SIGKILL on the same engine still fails with its own exit-code 137', async () => {
    const d = await dispatch(store, { nodeId, walletId: randomId('w'), functionId: randomId('f'), script: 'echo about to die >&2; kill -9 $$' });
    const failed = dataOf(await waitForEnd(store, d.executionId, 60_000), ExecutionFailed);
    expect(failed).toMatchObject({ reason: 'exit-code', exitCode: 137, retryable: false });
  }, 120_000);
});
