import { ContainerResized, ContainerStarted, eventOf, ExecutionStarted, ScalingDecided, streamName, type EventData } from '@mesh/contracts';
import { dataOf, dispatch, randomId, useNodes, waitForEvent } from './harness';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

/**
 * Scaling decisions written by someone else are applied only inside the rules (resize-guard.ts):
 * against a real container, a decision naming another wallet is refused (nothing applied, nothing
 * recorded) and one asking for 64 cores and 64 GiB gets the function's cpuMax and the node's memory.
 */
describe('container-manager: forged scaling decisions are clamped where they are applied', () => {
  const nodeId = randomId('cmclamp');
  const walletId = randomId('w');
  // The harness functions: cpuMin 100, cpuMax 2000 millicores; this node: 1500 millicores, 1 GiB.
  const cm = useNodes([{ nodeId, env: { NODE_CPU_MILLIS: '1500', NODE_MEMORY_BYTES: String(GiB) } }]);

  it('refuses a decision for another wallet, clamps one beyond the function and node limits', async () => {
    const functionId = randomId('f');
    const d = await dispatch(cm.node.running.store, { nodeId, walletId, functionId, script: 'sleep 5', timeoutMs: 30_000 });
    const started = (await waitForEvent(cm.node.running.store, streamName('execution', d.executionId), ExecutionStarted)).data;
    const container = (await waitForEvent(cm.node.running.store, streamName('container', started.containerId), ContainerStarted)).data;
    const decision = (decisionId: string, data: Partial<EventData<typeof ScalingDecided>>) =>
      eventOf(ScalingDecided, decisionId, {
        decisionId,
        containerId: container.containerId,
        nodeId,
        walletId,
        functionId,
        fromCpuMillis: 1000,
        toCpuMillis: 1000,
        fromMemoryBytes: 128 * MiB,
        toMemoryBytes: 128 * MiB,
        reason: 'scale-up',
        basedOnSampleSeqs: [1],
        decidedAtMs: Date.now(),
        ...data,
      });
    // In this order on one stream: the node handles them in order, so once the second is recorded the first was seen.
    await cm.node.running.store.append(
      streamName('scaling', container.containerId),
      [
        decision(`${container.containerId}-other-wallet`, { walletId: randomId('w'), toCpuMillis: 1500 }),
        decision(`${container.containerId}-huge`, { toCpuMillis: 64_000, toMemoryBytes: 64 * GiB }),
      ],
      'any',
    );
    const resized = (await waitForEvent(cm.node.running.store, streamName('container', container.containerId), ContainerResized)).data;
    expect(resized).toMatchObject({ decisionId: `${container.containerId}-huge`, toCpuMillis: 1500, toMemoryBytes: GiB });
    const inspect = await cm.docker.getContainer(container.dockerId).inspect();
    expect(inspect.HostConfig.CpuQuota).toBe(150_000);
    expect(inspect.HostConfig.Memory).toBe(GiB);
    const history = await cm.node.running.store.read(streamName('container', container.containerId));
    expect(history.filter((e) => e.type === 'ContainerResized').map((e) => dataOf([e], ContainerResized).decisionId)).toEqual([
      `${container.containerId}-huge`,
    ]);
  });
});
