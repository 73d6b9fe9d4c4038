import { randomBytes } from 'node:crypto';
import { nanos, type NatsConnection } from 'nats';
import { OPERATOR_OWNER, outputBucketOf } from '@mesh/contracts';
import { NatsServerProcess, eventually } from '@mesh/testing';
import { objectStore, readExecutionOutput, WALLET_HEADER } from '../../../apps/container-manager/src/storage/object-io';
import { OutputRefusedError, OutputStore } from '../../../apps/container-manager/src/storage/output-store';

const DAY_MS = 86_400_000;
const OUTPUT_BUCKET = outputBucketOf(OPERATOR_OWNER);
const BUCKET_MAX_BYTES = 1024 ** 3;
const parts = (bytes: number) => ({
  manifest: {
    format: 1 as const,
    executionId: 'x',
    exitCode: 0,
    stdoutBytes: 0,
    stderrBytes: 0,
    stdoutTruncated: false,
    stderrTruncated: false,
    filesTruncated: false,
  },
  stdout: Buffer.alloc(0),
  stderr: Buffer.alloc(0),
  files: { 'data.bin': randomBytes(bytes) },
});

/** The object store of the container-manager on a real nats-server: bucket TTLs and the per-wallet output quota. */
describe('object store: TTL and per-wallet quota', () => {
  let server: NatsServerProcess;
  let nc: NatsConnection;
  // Each test its own connection: objectStore() caches open buckets per connection.
  let other: NatsConnection;

  beforeAll(async () => {
    server = await NatsServerProcess.start();
    nc = await server.connect('object-store-test');
    other = await server.connect('object-store-test-2');
  }, 30_000);

  afterAll(async () => {
    await other?.close();
    await nc?.close();
    await server?.dispose();
  });

  const maxAgeOf = async (bucket: string) => {
    const jsm = await nc.jetstreamManager();
    return (await jsm.streams.info(`OBJ_${bucket}`)).config.max_age;
  };

  it('creates a bucket with the TTL as its max_age', async () => {
    await objectStore(nc, 'mesh-input-ttl-new', 7 * DAY_MS);
    expect(await maxAgeOf('mesh-input-ttl-new')).toBe(nanos(7 * DAY_MS));
  });

  it('updates a bucket that exists without a TTL, keeping its objects', async () => {
    const old = await nc.jetstream().views.os('mesh-input-ttl-old');
    await old.putBlob({ name: 'kept' }, Buffer.from('still here'));
    expect(await maxAgeOf('mesh-input-ttl-old')).toBe(0);
    const os = await objectStore(other, 'mesh-input-ttl-old', 2 * DAY_MS);
    expect(await maxAgeOf('mesh-input-ttl-old')).toBe(nanos(2 * DAY_MS));
    expect(Buffer.from((await os.getBlob('kept')) ?? []).toString()).toBe('still here');
  });

  it('stores outputs tagged with their wallet, refuses one over the quota without writing it, and counts from the bucket', async () => {
    const quota = 300_000;
    const outputs = new OutputStore(nc, { ttlMs: DAY_MS, quotaBytesPerWallet: quota, recountMs: 600_000, bucketMaxBytes: BUCKET_MAX_BYTES });
    const first = await outputs.write(OPERATOR_OWNER, 'w-quota', 'exec-q-1', parts(200_000));
    expect(first).toEqual({ bucket: OUTPUT_BUCKET, key: 'exec-q-1' });
    expect(await maxAgeOf(OUTPUT_BUCKET)).toBe(nanos(DAY_MS));
    const os = await objectStore(nc, OUTPUT_BUCKET);
    expect((await os.info('exec-q-1'))?.headers?.get(WALLET_HEADER)).toBe('w-quota');
    expect((await readExecutionOutput(nc, first)).files['data.bin'].length).toBe(200_000);

    const refused = outputs.write(OPERATOR_OWNER, 'w-quota', 'exec-q-2', parts(200_000));
    await expect(refused).rejects.toThrow(OutputRefusedError);
    await expect(refused).rejects.toThrow(/OUTPUT_QUOTA_BYTES_PER_WALLET=300000/);
    expect(await os.info('exec-q-2')).toBeNull();

    // Another wallet has its own quota.
    await outputs.write(OPERATOR_OWNER, 'w-other', 'exec-q-3', parts(200_000));

    // A node that starts now counts what is stored (from the bucket), wallet by wallet.
    const counted = new OutputStore(other, { ttlMs: DAY_MS, quotaBytesPerWallet: quota, recountMs: 600_000, bucketMaxBytes: BUCKET_MAX_BYTES });
    const stored = (await os.info('exec-q-1'))?.size;
    expect(await counted.usedBytes(OPERATOR_OWNER, 'w-quota')).toBe(stored);
    expect(await counted.usedBytes(OPERATOR_OWNER, 'w-nobody')).toBe(0);
    await expect(counted.write(OPERATOR_OWNER, 'w-quota', 'exec-q-4', parts(200_000))).rejects.toThrow(OutputRefusedError);
    // Deleted (as expiry does) and recounted: the wallet may store again.
    await os.delete('exec-q-1');
    const recounted = new OutputStore(other, { ttlMs: DAY_MS, quotaBytesPerWallet: quota, recountMs: 0, bucketMaxBytes: BUCKET_MAX_BYTES });
    expect(await recounted.usedBytes(OPERATOR_OWNER, 'w-quota')).toBe(0);
    await expect(recounted.write(OPERATOR_OWNER, 'w-quota', 'exec-q-5', parts(200_000))).resolves.toEqual({ bucket: OUTPUT_BUCKET, key: 'exec-q-5' });
  });

  // Last: it shortens the TTL of the output bucket (which drops older outputs at once).
  it('lets outputs expire after the TTL, and expired outputs stop counting against the quota', async () => {
    const third = await server.connect('object-store-test-3');
    try {
      const outputs = new OutputStore(third, { ttlMs: 1000, quotaBytesPerWallet: 1_000_000, recountMs: 0, bucketMaxBytes: BUCKET_MAX_BYTES });
      await outputs.write(OPERATOR_OWNER, 'w-expiring', 'exec-e-1', parts(1000));
      expect(await outputs.usedBytes(OPERATOR_OWNER, 'w-expiring')).toBeGreaterThan(1000);
      const os = await objectStore(third, OUTPUT_BUCKET);
      await eventually(async () => (await os.info('exec-e-1')) === null, 15_000, 'the output to expire');
      expect(await outputs.usedBytes(OPERATOR_OWNER, 'w-expiring')).toBe(0);
    } finally {
      await third.close();
    }
  }, 30_000);
});
