import {
  ContainerResized,
  ContainerStarted,
  ContainerStopped,
  eventOf,
  ExecutionFailed,
  ExecutionStarted,
  isEvent,
  ScalingDecided,
  streamName,
  type EventData,
} from '@mesh/contracts';
import { eventually } from '@mesh/testing';
import { findCgroupPaths, readCgroup, readCpuQuota, readMemoryLimit } from '../../../apps/container-manager/src/docker/cgroup';
import { dataOf, dispatch, randomId, samplesOf, terminalOf, waitForEnd, waitForEvent, useNodes, type DispatchOptions } from './harness';

const MiB = 1024 * 1024;

/** Resource sampling exactness, in-place resize, timeout, OOM and fork bomb against real containers. */
describe('container-manager: resources, limits and faults', () => {
  const nodeId = randomId('cmres');
  const walletId = randomId('w');
  const cm = useNodes([{ nodeId, env: { IDLE_TIMEOUT_MS: '2500', SAMPLE_INTERVAL_MS: '250', PIDS_LIMIT: '64' } }]);
  /** A task of a fresh function of this spec's wallet on this spec's node. */
  const dispatchHere = (o: Omit<DispatchOptions, 'nodeId' | 'walletId' | 'functionId'>) =>
    dispatch(cm.node.running.store, { nodeId, walletId, functionId: randomId('f'), ...o });

  async function containerOf(executionId: string): Promise<EventData<typeof ContainerStarted>> {
    const started = (await waitForEvent(cm.node.running.store, streamName('execution', executionId), ExecutionStarted)).data;
    return (await waitForEvent(cm.node.running.store, streamName('container', started.containerId), ContainerStarted)).data;
  }

  it('samples CPU exactly: the sampled core-ns of a CPU-bound task sum to the container counter at stop', async () => {
    const d = await dispatchHere({
      cpuInitialMillis: 1000,
      script: 'i=0; while [ $i -lt 250000 ]; do i=$((i+1)); done; echo $i',
    });
    const container = await containerOf(d.executionId);
    const paths = findCgroupPaths(container.dockerId);
    expect(paths).toBeDefined();
    expect(terminalOf(await waitForEnd(cm.node.running.store, d.executionId)).type).toBe('ExecutionSucceeded');
    // The container's own counter once the task is over (only the idle sleep is left in it).
    const counterAfterTask = (await readCgroup(paths!))!.cpuNanosTotal;
    expect(counterAfterTask).toBeGreaterThan(200_000_000);

    await waitForEvent(cm.node.running.store, streamName('container', container.containerId), ContainerStopped, 20_000);
    const samples = await samplesOf(cm.node.running.store, container.containerId);
    expect(samples.map((s) => s.seq)).toEqual(samples.map((_, i) => i + 1));
    expect(samples[samples.length - 1].final).toBe(true);
    for (let i = 1; i < samples.length; i++) expect(samples[i].windowStartMs).toBe(samples[i - 1].windowEndMs);
    expect(samples.some((s) => s.taskId === d.taskId)).toBe(true);
    const sampledNanos = samples.reduce((sum, s) => sum + s.cpuNanos, 0);
    // Exact by construction: the last window ends at the counter's last reading.
    expect(sampledNanos).toBe(samples[samples.length - 1].cpuNanosTotal);
    expect(Math.abs(sampledNanos - counterAfterTask) / counterAfterTask).toBeLessThan(0.02);
    expect(samples.every((s) => s.cpuLimitMillis === 1000 && s.memoryLimitBytes === 128 * MiB)).toBe(true);
    expect(Math.max(...samples.map((s) => s.memoryBytesMax))).toBeGreaterThan(0);
  });

  it('applies a scaling decision in place: docker inspect and the cgroup show the new limits', async () => {
    const fn = randomId('f');
    // 40 MiB in the /work tmpfs: memory the kernel cannot reclaim, so a 16 MiB limit must be refused.
    const d = await dispatch(cm.node.running.store, {
      nodeId,
      walletId,
      functionId: fn,
      script: 'head -c 41943040 /dev/zero > /work/big; sleep 4',
      timeoutMs: 20_000,
    });
    const container = await containerOf(d.executionId);
    const decisionId = `scale-${container.containerId}-1`;
    await cm.node.running.store.append(
      streamName('scaling', container.containerId),
      [
        eventOf(ScalingDecided, decisionId, {
          decisionId,
          containerId: container.containerId,
          nodeId,
          walletId,
          functionId: fn,
          fromCpuMillis: 1000,
          toCpuMillis: 350,
          fromMemoryBytes: 128 * MiB,
          toMemoryBytes: 96 * MiB,
          reason: 'scale-down',
          basedOnSampleSeqs: [1],
          decidedAtMs: Date.now(),
        }),
      ],
      'any',
    );
    const resized = (await waitForEvent(cm.node.running.store, streamName('container', container.containerId), ContainerResized)).data;
    expect(resized).toMatchObject({ decisionId, fromCpuMillis: 1000, toCpuMillis: 350, fromMemoryBytes: 128 * MiB, toMemoryBytes: 96 * MiB });
    expect(resized.applyMs).toBeGreaterThanOrEqual(0);
    const inspect = await cm.docker.getContainer(container.dockerId).inspect();
    expect(inspect.HostConfig.CpuQuota).toBe(35_000);
    expect(inspect.HostConfig.CpuPeriod).toBe(100_000);
    expect(inspect.HostConfig.Memory).toBe(96 * MiB);
    expect(await readCpuQuota(container.dockerId)).toEqual({ quotaUs: 35_000, periodUs: 100_000 });
    expect(await readMemoryLimit(container.dockerId)).toBe(96 * MiB);
    // Later samples carry the new limits; the task still succeeds.
    await eventually(
      async () => (await samplesOf(cm.node.running.store, container.containerId)).some((s) => s.cpuLimitMillis === 350),
      10_000,
      'a sample with the new limit',
    );

    // A memory limit below the memory in use: the CPU part is applied, the memory stays, the decision is answered.
    await eventually(async () => ((await readCgroup(findCgroupPaths(container.dockerId)!))?.memoryBytes ?? 0) > 40 * MiB, 10_000, '40 MiB in use');
    const second = `scale-${container.containerId}-2`;
    await cm.node.running.store.append(
      streamName('scaling', container.containerId),
      [
        eventOf(ScalingDecided, second, {
          decisionId: second,
          containerId: container.containerId,
          nodeId,
          walletId,
          functionId: fn,
          fromCpuMillis: 350,
          toCpuMillis: 600,
          fromMemoryBytes: 96 * MiB,
          toMemoryBytes: 16 * MiB,
          reason: 'memory-down',
          basedOnSampleSeqs: [2],
          decidedAtMs: Date.now(),
        }),
      ],
      'any',
    );
    const partial = await eventually(
      async () =>
        (await cm.node.running.store.read(streamName('container', container.containerId)))
          .filter((e) => isEvent(e, ContainerResized))
          .map((e) => e.data)
          .find((r) => r.decisionId === second),
      10_000,
      'the second ContainerResized',
    );
    expect(partial).toMatchObject({ fromCpuMillis: 350, toCpuMillis: 600, fromMemoryBytes: 96 * MiB, toMemoryBytes: 96 * MiB });
    expect(await readCpuQuota(container.dockerId)).toEqual({ quotaUs: 60_000, periodUs: 100_000 });
    expect(terminalOf(await waitForEnd(cm.node.running.store, d.executionId)).type).toBe('ExecutionSucceeded');
  });

  it('kills a task that runs past its timeout', async () => {
    const d = await dispatchHere({ script: 'sleep 30', timeoutMs: 1500 });
    const container = await containerOf(d.executionId);
    const end = terminalOf(await waitForEnd(cm.node.running.store, d.executionId));
    expect(end.type).toBe('ExecutionTimedOut');
    expect(end.data).toMatchObject({ timeoutMs: 1500 });
    const stopped = await waitForEvent(cm.node.running.store, streamName('container', container.containerId), ContainerStopped);
    expect(stopped.data).toMatchObject({ reason: 'timeout' });
    expect(
      await cm.docker
        .getContainer(container.dockerId)
        .inspect()
        .then(
          () => 'exists',
          () => 'gone',
        ),
    ).toBe('gone');
  });

  it('reports an OOM kill as such', async () => {
    const d = await dispatchHere({
      script: 'tail /dev/zero',
      memoryBytes: 24 * MiB,
      timeoutMs: 20_000,
    });
    const failed = dataOf(await waitForEnd(cm.node.running.store, d.executionId), ExecutionFailed);
    expect(failed.reason).toBe('oom');
    expect(failed.stderrTail).toContain('out of memory');
  });

  it('survives a fork bomb: the pids limit holds and the task ends', async () => {
    const d = await dispatchHere({
      script: 'bomb() { bomb | bomb & }; bomb; sleep 5',
      timeoutMs: 2500,
    });
    const events = await waitForEnd(cm.node.running.store, d.executionId, 30_000);
    expect(['ExecutionTimedOut', 'ExecutionFailed']).toContain(terminalOf(events).type);
    const { containerId } = dataOf(events, ExecutionStarted);
    await waitForEvent(cm.node.running.store, streamName('container', containerId), ContainerStopped, 20_000);
  });
});
