import { execFile } from 'node:child_process';
import { join } from 'node:path';
import type { NatsConnection } from 'nats';
import { subjectForStream, TestEvent } from '@mesh/contracts';
import { JetStreamEventStore } from '@mesh/eventstore';
import { NatsServerProcess } from '@mesh/testing';

const MESH = join(__dirname, '..', '..', '..', 'bin', 'mesh.js');

/** `mesh events tail` only reads: it prints a warning line for each poison message and goes on with the events after it. */
describe('mesh events tail with poison in the log', () => {
  let server: NatsServerProcess;
  let nc: NatsConnection;

  beforeAll(async () => {
    server = await NatsServerProcess.start();
    nc = await server.connect('poison-cli-test');
  });
  afterAll(async () => {
    await nc?.close();
    await server?.dispose();
  });

  it('given garbage between two events, when the log is tailed from the start, then it warns about the garbage and prints both events', async () => {
    const store = await JetStreamEventStore.connect(nc, { warn: () => undefined });
    await store.append('test-tail', [{ id: 'tail-1', type: TestEvent.type, data: { n: 1 } }], 'no_stream');
    const bad = (await nc.jetstream().publish(subjectForStream('test-tail'), Buffer.from('garbage'))).seq;
    await store.append('test-tail', [{ id: 'tail-2', type: TestEvent.type, data: { n: 2 } }], 0);
    // The second append met the garbage as the subject's last message and quarantined it: done before the tail runs.
    await store.flushQuarantine();
    const head = await store.headPosition();

    const { code, out, err } = await new Promise<{ code: number | null; out: string; err: string }>((resolve) => {
      execFile(
        process.execPath,
        [MESH, 'events', 'tail', 'test', '--from-start', '--limit', '3'],
        { env: { ...process.env, NATS_URL: server.url, MESH_FROM_SOURCE: '1' }, timeout: 60_000 },
        (error, stdout, stderr) => resolve({ code: error ? ((error as { code?: number }).code ?? null) : 0, out: stdout, err: stderr }),
      );
    });
    expect(code).toBe(0);
    expect(err).toContain(`warning: skipped poison #${bad} on mesh.events.test.tail: not JSON`);
    expect(out.split('\n').filter((line) => line.includes('TestEvent'))).toHaveLength(2);
    // The tail wrote nothing (no quarantine record): only a reader.
    expect(await store.headPosition()).toBe(head);
  });
});
