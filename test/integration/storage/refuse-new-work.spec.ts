import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { NatsConnection } from 'nats';
import { STORAGE_FULL, WalletOpened, eventOf, storageRequest, storageStatusSchema, type StorageStatus } from '@mesh/contracts';
import { JetStreamEventStore } from '@mesh/eventstore';
import { MeshClient, RequestError, startService, type RunningService } from '@mesh/runtime';
import { NatsServerProcess, eventually } from '@mesh/testing';
import { SchedulerService } from '../../../apps/scheduler/src/main';

const MiB = 1024 ** 2;
/** The capacity the scheduler is told (as `mesh up` tells it the server's max_file_store). */
const CAPACITY_BYTES = 8 * MiB;
const MESH = join(__dirname, '..', '..', '..', 'bin', 'mesh.js');

/**
 * The scheduler's storage guard on a real nats-server: new work (submit-task, deploy-function) is
 * refused with storage_full while JetStream's usage is above STORAGE_REFUSE_ABOVE_PCT of the
 * capacity, nothing is written, and it is accepted again once space is freed. `mesh status --json`
 * shows the same measurement.
 */
describe('storage guard: new work refused before the store is full', () => {
  let server: NatsServerProcess;
  let nc: NatsConnection;
  let store: JetStreamEventStore;
  let client: MeshClient;
  let scheduler: RunningService | undefined;
  const dataDir = mkdtempSync(join(tmpdir(), 'mesh-storage-cli-'));

  const startScheduler = async (env: Record<string, string>) => {
    const running = await startService(SchedulerService, { NATS_URL: server.url, LOG_LEVEL: 'warn', STORAGE_CHECK_MS: '0', ...env });
    await running.nc.flush();
    return running;
  };
  const deploy = (functionId: string) =>
    client.requestRaw('mesh.api.scheduler.deploy-function', { functionId, image: 'mesh/task-base:latest', script: 'cat "$1"', memoryBytes: 64 * MiB });
  const submit = (functionId: string, taskId: string) =>
    client.requestRaw('mesh.api.scheduler.submit-task', { functionId, walletId: 'w-storage', taskId, input: { inline: 'aGk=' } });
  const refusal = async (request: Promise<unknown>): Promise<RequestError> => {
    try {
      await request;
    } catch (err) {
      if (err instanceof RequestError) return err;
      throw err;
    }
    throw new Error('the request was accepted');
  };
  const storage = (): Promise<StorageStatus> => client.request(storageRequest, {});

  beforeAll(async () => {
    server = await NatsServerProcess.start();
    nc = await server.connect('storage-test');
    store = await JetStreamEventStore.connect(nc);
    client = new MeshClient(nc);
    await store.append(
      'wallet-w-storage',
      [
        eventOf(WalletOpened, 'w-storage-opened', {
          walletId: 'w-storage',
          currency: 'GRC',
          balanceAfter: '0',
          prevHash: '0'.repeat(64),
          kind: 'user',
          maxDebt: '0.5',
          minBalance: '1',
          policy: 'greedy',
          openedAtMs: Date.now(),
        }),
      ],
      'any',
    );
  }, 60_000);

  afterAll(async () => {
    await scheduler?.stop();
    await store?.close();
    await nc?.close();
    await server?.dispose();
    rmSync(dataDir, { recursive: true, force: true });
  }, 60_000);

  it('refuses submit and deploy above the threshold with storage_full, writing no event, and accepts again below it', async () => {
    scheduler = await startScheduler({ STORAGE_REFUSE_ABOVE_PCT: '50', STORAGE_CAPACITY_BYTES: String(CAPACITY_BYTES) });
    await deploy('f-storage');
    await submit('f-storage', 't-before');
    const before = await storage();
    expect(before).toMatchObject({ capacityBytes: CAPACITY_BYTES, capacitySource: 'configured', refuseAbovePct: 50, refusing: false });

    // Fill JetStream past half of the capacity (what outputs do), through an object bucket.
    const filler = await nc.jetstream().views.os('storage-test-filler');
    await filler.putBlob({ name: 'big' }, randomBytes(5 * MiB));
    const full = await storage();
    expect(full.refusing).toBe(true);
    expect(full.usedBytes).toBeGreaterThan(CAPACITY_BYTES / 2);

    const head = await store.headPosition();
    const refused = await refusal(submit('f-storage', 't-refused'));
    expect(refused.code).toBe(STORAGE_FULL);
    expect(refused.message).toContain('STORAGE_REFUSE_ABOVE_PCT=50%');
    expect(refused.message).toMatch(/uses \d+(\.\d+)?% of its capacity/);
    expect((await refusal(deploy('f-refused'))).code).toBe(STORAGE_FULL);
    expect(await store.read('task-t-refused')).toEqual([]);
    expect(await store.read('function-f-refused')).toEqual([]);
    expect(await store.headPosition()).toBe(head);

    // Space freed: accepted again (the guard measures on every request here: STORAGE_CHECK_MS=0).
    await filler.delete('big');
    await eventually(async () => !(await storage()).refusing, 10_000, 'the guard to accept again');
    await submit('f-storage', 't-after');
    expect((await store.read('task-t-after')).map((e) => e.type)).toEqual(['TaskSubmitted']);
  }, 60_000);

  it('mesh status --json shows the storage usage and whether new work is refused', async () => {
    const out = await new Promise<string>((resolve, reject) =>
      execFile(
        process.execPath,
        [MESH, '--json', 'status'],
        { env: { ...process.env, NATS_URL: server.url, MESH_FROM_SOURCE: '1', MESH_DATA_DIR: dataDir }, timeout: 60_000 },
        // Exit code 1: the other four services are not running here; the JSON is printed anyway.
        (error, stdout) => (stdout ? resolve(stdout) : reject(error ?? new Error('no output'))),
      ),
    );
    const printed = JSON.parse(out) as { storage: unknown };
    const shown = storageStatusSchema.parse(printed.storage);
    expect(shown).toMatchObject({ capacityBytes: CAPACITY_BYTES, refuseAbovePct: 50, refusing: false });
    expect(shown.usedBytes).toBeGreaterThan(0);
  }, 90_000);

  it("refuses on the store directory's filesystem too (JETSTREAM_STORE_DIR), even with no JetStream capacity known", async () => {
    await scheduler?.stop();
    scheduler = await startScheduler({ STORAGE_REFUSE_ABOVE_PCT: '0', STORAGE_CAPACITY_BYTES: '0', JETSTREAM_STORE_DIR: server.storeDir });
    const s = await storage();
    expect(s).toMatchObject({ capacitySource: 'none', capacityBytes: null, refusing: true });
    expect(s.filesystem?.path).toBe(server.storeDir);
    const refused = await refusal(submit('f-storage', 't-fs'));
    expect(refused.code).toBe(STORAGE_FULL);
    expect(refused.message).toContain(`the filesystem of ${server.storeDir}`);
    expect(await store.read('task-t-fs')).toEqual([]);
  }, 60_000);
});
