import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { NatsConnection } from 'nats';
import { NatsServerProcess } from '@mesh/testing';

const MESH = join(__dirname, '..', '..', '..', 'bin', 'mesh.js');

/** `mesh task submit --input` checks INPUT_MAX_BYTES before anything is stored in the object store. */
describe('mesh task submit: input size limit', () => {
  let server: NatsServerProcess;
  let nc: NatsConnection;
  const dir = mkdtempSync(join(tmpdir(), 'mesh-storage-input-'));

  beforeAll(async () => {
    server = await NatsServerProcess.start();
    nc = await server.connect('cli-input-test');
  }, 30_000);

  afterAll(async () => {
    await nc?.close();
    await server?.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  it('refuses an input over INPUT_MAX_BYTES with a usage error naming the limit, storing nothing', async () => {
    const file = join(dir, 'big.bin');
    writeFileSync(file, Buffer.alloc(200_000, 1));
    const r = await new Promise<{ code: number | null; err: string }>((resolve) =>
      execFile(
        process.execPath,
        [MESH, 'task', 'submit', 'f-big', '--wallet', 'w-big', '--input', file],
        { env: { ...process.env, NATS_URL: server.url, MESH_FROM_SOURCE: '1', INPUT_MAX_BYTES: '100000' }, timeout: 60_000 },
        (error, _out, err) => resolve({ code: error ? ((error as { code?: number }).code ?? null) : 0, err }),
      ),
    );
    expect(r.code).toBe(2);
    expect(r.err).toContain('the input is 200000 bytes, more than INPUT_MAX_BYTES=100000 bytes');
    const jsm = await nc.jetstreamManager();
    const streams = await jsm.streams.names().next();
    expect(streams).not.toContain('OBJ_mesh-input-operator');
  }, 60_000);
});
