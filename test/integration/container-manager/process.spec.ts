import { heartbeatSubject, nodeHeartbeatSchema, NodeRegistered, streamName } from '@mesh/contracts';
import { createEventStore } from '@mesh/eventstore/factory';
import { NatsServerProcess, ServiceProcess } from '@mesh/testing';
import { randomId, removeNodeContainers, requireDocker, waitForEvent } from './harness';

/** The container-manager as its own process: registers its node, beats, leaves cleanly on SIGTERM. */
describe('container-manager process', () => {
  let server: NatsServerProcess;
  let proc: ServiceProcess | undefined;
  const nodeId = randomId('cmproc');

  beforeAll(async () => {
    await requireDocker();
    server = await NatsServerProcess.start();
  });
  afterAll(async () => {
    await proc?.stop('SIGKILL');
    await removeNodeContainers(await requireDocker(), [nodeId]);
    await server?.dispose();
  });

  it('registers the node, sends heartbeats, and records NodeLeft on SIGTERM', async () => {
    proc = ServiceProcess.start('container-manager', {
      NATS_URL: server.url,
      NODE_ID: nodeId,
      NODE_CPU_MILLIS: '3000',
      NODE_LABELS: 'zone=a',
      NODE_HEARTBEAT_MS: '200',
    });
    const health = await proc.healthy(server.url, 90_000);
    expect(health).toMatchObject({ service: 'container-manager', status: 'ok', details: { nodeId, reconciled: true } });
    const nc = await server.connect();
    const store = await createEventStore({ EVENT_STORE: 'jetstream', EVENT_REPLICAS: 1 } as never, nc);
    try {
      const sub = nc.subscribe(heartbeatSubject(nodeId), { max: 1 });
      for await (const m of sub) {
        const beat = nodeHeartbeatSchema.parse(JSON.parse(Buffer.from(m.data).toString()));
        expect(beat).toMatchObject({ nodeId, cpuMillis: 3000, runningContainers: 0 });
      }
      const registered = await waitForEvent(store, streamName('node', nodeId), NodeRegistered, 10_000);
      expect(registered.data).toMatchObject({ nodeId, cpuMillis: 3000, labels: { zone: 'a' } });
      expect(await proc.stop('SIGTERM')).toBe(0);
      const events = await store.read(streamName('node', nodeId));
      expect(events.map((e) => e.type)).toEqual(['NodeRegistered', 'NodeLeft']);
    } finally {
      await store.close();
      await nc.close();
    }
  }, 120_000);
});
