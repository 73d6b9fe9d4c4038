import {
  ContainerStarted,
  ContainerStopped,
  ExecutionFailed,
  ExecutionStarted,
  ExecutionSucceeded,
  inputBucketOf,
  OPERATOR_OWNER,
  outputBucketOf,
  streamName,
} from '@mesh/contracts';
import { eventually } from '@mesh/testing';
import { readExecutionOutput } from '../../../apps/container-manager/src/main';
import { objectStore } from '../../../apps/container-manager/src/storage/object-io';
import { dataOf, dispatch, nodeContainers, randomId, samplesOf, terminalOf, waitForEnd, waitForEvent, useNodes, type DispatchOptions } from './harness';

/**
 * One container-manager against the real Docker engine: cold start, warm reuse, sandbox, output
 * storage, failing scripts, missing images, dispatches for other nodes, output floods, idle stop.
 */
describe('container-manager: task lifecycle in real containers', () => {
  const nodeId = randomId('cmlife');
  const walletId = randomId('w');
  const cm = useNodes([{ nodeId, env: { IDLE_TIMEOUT_MS: '4000', OUTPUT_CAP_BYTES: '65536', CONTAINER_IMAGES_ALLOWED: 'mesh/does-not-exist:never' } }]);
  /** A task of a fresh function of this spec's wallet on this spec's node. */
  const dispatchHere = (o: Omit<DispatchOptions, 'nodeId' | 'walletId' | 'functionId'>) =>
    dispatch(cm.node.running.store, { nodeId, walletId, functionId: randomId('f'), ...o });

  it('runs a task cold in a sandboxed container, then warm in the same container; output is stored', async () => {
    const fn = randomId('f');
    const script =
      'read -r x < "$1"; echo "hello $x"; echo "to stderr" >&2; echo "result of $x" > "$2/result.txt"; mkdir -p "$2/sub"; echo deep > "$2/sub/d.txt"';
    const first = await dispatch(cm.node.running.store, { nodeId, walletId, functionId: fn, script, input: 'world\n' });
    const events = await waitForEnd(cm.node.running.store, first.executionId);
    const started = dataOf(events, ExecutionStarted);
    expect(started.warm).toBe(false);
    const end = terminalOf(events);
    expect(end.type).toBe('ExecutionSucceeded');
    const ok = dataOf(events, ExecutionSucceeded);
    expect(ok.outputRef).toEqual({ bucket: outputBucketOf(OPERATOR_OWNER), key: first.executionId });

    const output = await readExecutionOutput(cm.node.running.nc, ok.outputRef);
    expect(output.stdout.toString()).toBe('hello world\n');
    expect(output.stderr.toString()).toBe('to stderr\n');
    expect(output.files['result.txt'].toString()).toBe('result of world\n');
    expect(output.files['sub/d.txt'].toString()).toBe('deep\n');

    const containerStarted = (await waitForEvent(cm.node.running.store, streamName('container', started.containerId), ContainerStarted)).data;
    expect(containerStarted.coldStartMs).toBeGreaterThan(0);
    expect(containerStarted.containerId).toMatch(/^c[a-z0-9]{12}$/);

    // Sandbox defaults, as Docker applied them.
    const inspect = await cm.docker.getContainer(containerStarted.dockerId).inspect();
    expect(inspect.Config.User).toBe('1000:1000');
    expect(inspect.Config.Labels['mesh.node']).toBe(nodeId);
    expect(inspect.HostConfig.ReadonlyRootfs).toBe(true);
    expect(inspect.HostConfig.CapDrop).toEqual(['ALL']);
    expect(inspect.HostConfig.SecurityOpt).toContain('no-new-privileges');
    expect(inspect.HostConfig.NetworkMode).toBe('none');
    expect(inspect.HostConfig.PidsLimit).toBe(256);
    expect(inspect.HostConfig.Memory).toBe(128 * 1024 * 1024);
    expect(inspect.HostConfig.MemorySwap).toBe(128 * 1024 * 1024);
    expect(inspect.HostConfig.CpuQuota).toBe(100_000);
    expect(inspect.HostConfig.CpuPeriod).toBe(100_000);
    expect(inspect.HostConfig.NanoCpus ?? 0).toBe(0);

    const second = await dispatch(cm.node.running.store, { nodeId, walletId, functionId: fn, script, input: 'again\n' });
    const events2 = await waitForEnd(cm.node.running.store, second.executionId);
    const started2 = dataOf(events2, ExecutionStarted);
    expect(started2.warm).toBe(true);
    expect(started2.containerId).toBe(started.containerId);
    expect(terminalOf(events2).type).toBe('ExecutionSucceeded');
    const output2 = await readExecutionOutput(cm.node.running.nc, dataOf(events2, ExecutionSucceeded).outputRef);
    // The previous run's files are gone: each run starts with a clean job folder.
    expect(Object.keys(output2.files).sort()).toEqual(['result.txt', 'sub/d.txt']);
    expect(output2.stdout.toString()).toBe('hello again\n');
  });

  it("reads an input from its owner's input bucket of the object store, and refuses a reference to any other bucket", async () => {
    const fn = randomId('f');
    const os = await objectStore(cm.node.running.nc, inputBucketOf(OPERATOR_OWNER));
    await os.putBlob({ name: 'item-1' }, Buffer.from('from the object store'));
    const d = await dispatch(cm.node.running.store, {
      nodeId,
      walletId,
      functionId: fn,
      script: 'cat "$1"',
      objectRef: { bucket: inputBucketOf(OPERATOR_OWNER), key: 'item-1' },
    });
    const output = await readExecutionOutput(cm.node.running.nc, dataOf(await waitForEnd(cm.node.running.store, d.executionId), ExecutionSucceeded).outputRef);
    expect(output.stdout.toString()).toBe('from the object store');

    const missing = await dispatch(cm.node.running.store, {
      nodeId,
      walletId,
      functionId: fn,
      script: 'cat "$1"',
      objectRef: { bucket: inputBucketOf(OPERATOR_OWNER), key: 'nope' },
    });
    const failed = dataOf(await waitForEnd(cm.node.running.store, missing.executionId), ExecutionFailed);
    expect(failed).toMatchObject({ reason: 'input-missing', retryable: false });

    // A tenant's task naming the operator's object: refused, although the object exists.
    const foreign = await dispatch(cm.node.running.store, {
      nodeId,
      walletId,
      functionId: fn,
      tenantId: 'acme',
      script: 'cat "$1"',
      objectRef: { bucket: inputBucketOf(OPERATOR_OWNER), key: 'item-1' },
    });
    const refusedEvents = await waitForEnd(cm.node.running.store, foreign.executionId);
    expect(refusedEvents).toHaveLength(1);
    expect(dataOf(refusedEvents, ExecutionFailed)).toMatchObject({
      reason: 'input-missing',
      retryable: false,
      stderrTail: `input refused: ${inputBucketOf(OPERATOR_OWNER)}/item-1 is not in the input bucket of its owner acme (${inputBucketOf('acme')})`,
    });
  });

  it("refuses a task whose image is not on the node's allow-list, without a container or a retry", async () => {
    const before = (await nodeContainers(cm.docker, nodeId)).length;
    const d = await dispatchHere({ script: 'true', image: 'busybox:latest' });
    const events = await waitForEnd(cm.node.running.store, d.executionId);
    expect(events).toHaveLength(1);
    expect(dataOf(events, ExecutionFailed)).toMatchObject({ reason: 'image-missing', retryable: false });
    expect(dataOf(events, ExecutionFailed).stderrTail).toMatch(/^image busybox:latest is not on this node's allow-list/);
    expect((await nodeContainers(cm.docker, nodeId)).length).toBeLessThanOrEqual(before);
  });

  it('reports a failing script with its exit code and the tail of stderr', async () => {
    const d = await dispatchHere({ script: 'echo "something broke" >&2; exit 3' });
    const failed = dataOf(await waitForEnd(cm.node.running.store, d.executionId), ExecutionFailed);
    expect(failed).toMatchObject({ reason: 'exit-code', exitCode: 3, retryable: false });
    expect(failed.stderrTail).toContain('something broke');
  });

  it('fails a task whose image does not exist at once, without a retry, and creates no container', async () => {
    const before = (await nodeContainers(cm.docker, nodeId)).length;
    const d = await dispatchHere({ script: 'true', image: 'mesh/does-not-exist:never' });
    const events = await waitForEnd(cm.node.running.store, d.executionId);
    expect(events).toHaveLength(1);
    const failed = dataOf(events, ExecutionFailed);
    expect(failed).toMatchObject({ reason: 'image-missing', retryable: false });
    expect(failed.stderrTail).toContain('mesh/does-not-exist:never');
    expect((await nodeContainers(cm.docker, nodeId)).length).toBeLessThanOrEqual(before);
  });

  it('ignores a dispatch for another node', async () => {
    const other = await dispatch(cm.node.running.store, { nodeId: randomId('othernode'), walletId, functionId: randomId('f'), script: 'true' });
    // The task consumer handles dispatches in order: once the next one is done, the other was seen.
    const mine = await dispatchHere({ script: 'true' });
    await waitForEnd(cm.node.running.store, mine.executionId);
    expect(await cm.node.running.store.read(streamName('execution', other.executionId))).toEqual([]);
  });

  it('caps a flood of output and keeps the first bytes', async () => {
    const d = await dispatchHere({
      script: 'head -c 3000000 /dev/zero | tr "\\0" a; echo done >&2',
    });
    const output = await readExecutionOutput(cm.node.running.nc, dataOf(await waitForEnd(cm.node.running.store, d.executionId), ExecutionSucceeded).outputRef);
    expect(output.stdout.length).toBe(65536);
    expect(output.manifest).toMatchObject({ stdoutBytes: 3_000_000, stdoutTruncated: true, stderrTruncated: false });
  });

  it('stops and removes a container after the idle timeout, with a final sample', async () => {
    const fn = randomId('f');
    const d = await dispatch(cm.node.running.store, { nodeId, walletId, functionId: fn, script: 'echo hi' });
    const events = await waitForEnd(cm.node.running.store, d.executionId);
    const { containerId } = dataOf(events, ExecutionStarted);
    const stopped = await waitForEvent(cm.node.running.store, streamName('container', containerId), ContainerStopped, 20_000);
    expect(stopped.data).toMatchObject({ reason: 'idle', containerId, nodeId });
    const started = dataOf(await cm.node.running.store.read(streamName('container', containerId)), ContainerStarted);
    await eventually(
      async () =>
        !(await cm.docker
          .getContainer(started.dockerId)
          .inspect()
          .then(
            () => true,
            () => false,
          )),
      10_000,
      'container removed',
    );
    const samples = await samplesOf(cm.node.running.store, containerId);
    expect(samples.length).toBeGreaterThan(0);
    expect(samples.map((s) => s.seq)).toEqual(samples.map((_, i) => i + 1));
    expect(samples[samples.length - 1].final).toBe(true);
    expect(samples.slice(0, -1).every((s) => !s.final)).toBe(true);
  });
});
