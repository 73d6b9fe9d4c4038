import type Docker from 'dockerode';
import { ExecutionFailed, ExecutionStarted, ExecutionSucceeded, OPERATOR_OWNER, outputBucketOf } from '@mesh/contracts';
import { NatsServerProcess } from '@mesh/testing';
import { objectStore } from '../../../apps/container-manager/src/storage/object-io';
import {
  dataOf,
  dispatch,
  randomId,
  removeNodeContainers,
  requireDocker,
  terminalOf,
  waitForEnd,
  type NodeHandle,
  startNode,
} from '../container-manager/harness';

const KiB = 1024;
/** A script that leaves `$1` KiB of incompressible bytes in its output folder. */
const WRITE_KIB = 'n=$(cat "$1"); head -c $((n * 1024)) /dev/urandom > "$2/data.bin"; echo "wrote $n KiB"';

/**
 * Output limits in a real container-manager with real containers: an output folder over
 * OUTPUT_DIR_MAX_BYTES and an output over the wallet's OUTPUT_QUOTA_BYTES_PER_WALLET both fail the
 * execution with the reason in its stderr tail, and nothing is stored for it.
 */
describe('output limits: too large and over quota fail the execution cleanly', () => {
  let server: NatsServerProcess;
  let docker: Docker;
  let node: NodeHandle;
  const nodeId = randomId('cmstore');
  const walletId = randomId('w');
  const functionId = randomId('f');

  beforeAll(async () => {
    docker = await requireDocker();
    server = await NatsServerProcess.start();
    node = await startNode(server, nodeId, {
      OUTPUT_DIR_MAX_BYTES: String(1024 * KiB),
      OUTPUT_QUOTA_BYTES_PER_WALLET: String(700 * KiB),
      OBJECT_TTL_MS: String(86_400_000),
      TENANT_BUCKET_MAX_BYTES: String(900 * KiB),
    });
  }, 60_000);

  afterAll(async () => {
    await node?.running.stop().catch(() => undefined);
    if (docker) await removeNodeContainers(docker, [nodeId]);
    await server?.dispose();
  }, 60_000);

  const run = async (kib: number, owner: { walletId: string; tenantId?: string } = { walletId }) => {
    const d = await dispatch(node.running.store, { nodeId, functionId, script: WRITE_KIB, input: String(kib), ...owner });
    return { d, events: await waitForEnd(node.running.store, d.executionId) };
  };
  const stored = async (executionId: string, owner = OPERATOR_OWNER) =>
    (await (await objectStore(node.running.nc, outputBucketOf(owner))).info(executionId)) !== null;

  it('fails an execution whose output folder is over OUTPUT_DIR_MAX_BYTES, storing nothing', async () => {
    const { d, events } = await run(2048);
    dataOf(events, ExecutionStarted);
    expect(terminalOf(events).type).toBe('ExecutionFailed');
    const failed = dataOf(events, ExecutionFailed);
    expect(failed).toMatchObject({ reason: 'exit-code', retryable: false, exitCode: 0 });
    expect(failed.outputRef).toBeUndefined();
    expect(failed.stderrTail).toMatch(/^output not stored: the output folder is \d+ bytes \(as a tar\), more than OUTPUT_DIR_MAX_BYTES=1048576/);
    expect(await stored(d.executionId)).toBe(false);
  }, 60_000);

  it("stores outputs within the wallet's quota, and fails the one that would exceed it, storing nothing", async () => {
    const ok = await run(400);
    expect(terminalOf(ok.events).type).toBe('ExecutionSucceeded');
    expect(dataOf(ok.events, ExecutionSucceeded).outputRef).toEqual({ bucket: outputBucketOf(OPERATOR_OWNER), key: ok.d.executionId });
    expect(await stored(ok.d.executionId)).toBe(true);

    const over = await run(400);
    expect(terminalOf(over.events).type).toBe('ExecutionFailed');
    const failed = dataOf(over.events, ExecutionFailed);
    expect(failed).toMatchObject({ reason: 'exit-code', retryable: false });
    expect(failed.outputRef).toBeUndefined();
    expect(failed.stderrTail).toContain(`wallet ${walletId} already stores`);
    expect(failed.stderrTail).toContain(`OUTPUT_QUOTA_BYTES_PER_WALLET=${700 * KiB}`);
    expect(await stored(over.d.executionId)).toBe(false);
  }, 60_000);

  it("stores a tenant's outputs in its own bucket, and fails the one that would take the bucket over TENANT_BUCKET_MAX_BYTES", async () => {
    const tenantId = randomId('acme');
    const ok = await run(500, { walletId: randomId('w'), tenantId });
    expect(dataOf(ok.events, ExecutionSucceeded).outputRef).toEqual({ bucket: outputBucketOf(tenantId), key: ok.d.executionId });
    expect(await stored(ok.d.executionId, tenantId)).toBe(true);
    const jsm = await node.running.nc.jetstreamManager();
    expect((await jsm.streams.info(`OBJ_${outputBucketOf(tenantId)}`)).config.max_bytes).toBe(900 * KiB);

    // Another wallet of the same tenant: within its wallet quota, but the bucket is full.
    const over = await run(500, { walletId: randomId('w'), tenantId });
    const failed = dataOf(over.events, ExecutionFailed);
    expect(failed).toMatchObject({ reason: 'exit-code', retryable: false });
    expect(failed.outputRef).toBeUndefined();
    const reason = `the output bucket ${outputBucketOf(tenantId)} of ${tenantId} already holds`;
    expect(failed.stderrTail).toMatch(new RegExp(`^output not stored: it is \\d+ bytes and ${reason} \\d+ of its max_bytes=${900 * KiB}`));
    expect(await stored(over.d.executionId, tenantId)).toBe(false);
  }, 60_000);
});
