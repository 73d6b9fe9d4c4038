import { ContainerStopped, eventOf, ExecutionStarted, StandingChanged, streamName, TaskCancelled, TaskRequeued, type EventData } from '@mesh/contracts';
import { suspensionData } from '@mesh/testing';
import { dispatch, nodeContainers, randomId, samplesOf, terminalOf, waitForEnd, waitForEvent, useNodes } from './harness';

/** Abort on suspension, cancel, superseded attempts, two nodes side by side (restart safety: restart.spec.ts). */
describe('container-manager: abort, cancel, several nodes', () => {
  const nodeA = randomId('cmabA');
  const nodeB = randomId('cmabB');
  const cm = useNodes([{ nodeId: nodeA }, { nodeId: nodeB }]);
  const nodes = cm.nodes;

  const store = () => nodes[0].running.store;

  async function startedOf(executionId: string): Promise<EventData<typeof ExecutionStarted>> {
    return (await waitForEvent(store(), streamName('execution', executionId), ExecutionStarted)).data;
  }

  function suspend(walletId: string) {
    return store().append(
      streamName('standing', walletId),
      [eventOf(StandingChanged, randomId('st'), suspensionData(walletId, { eventId: randomId('cause'), revision: 3 }, Date.now()))],
      'any',
    );
  }

  it("aborts a suspended wallet's tasks on every node and stops its containers; other wallets keep running", async () => {
    const wallet = randomId('w');
    const other = randomId('w');
    const fn = randomId('f');
    const onA = await dispatch(store(), {
      nodeId: nodeA,
      walletId: wallet,
      functionId: fn,
      script: 'while :; do :; done',
      timeoutMs: 60_000,
      cpuInitialMillis: 200,
    });
    const onB = await dispatch(store(), { nodeId: nodeB, walletId: wallet, functionId: fn, script: 'sleep 60', timeoutMs: 60_000 });
    const bystander = await dispatch(store(), { nodeId: nodeA, walletId: other, functionId: fn, script: 'sleep 3; echo fine', timeoutMs: 60_000 });
    const [a, b, c] = [await startedOf(onA.executionId), await startedOf(onB.executionId), await startedOf(bystander.executionId)];
    expect(a.nodeId).toBe(nodeA);
    expect(b.nodeId).toBe(nodeB);

    await suspend(wallet);
    for (const s of [a, b]) {
      const end = terminalOf(await waitForEnd(store(), s.executionId));
      expect(end.type).toBe('ExecutionAborted');
      expect(end.data).toMatchObject({ reason: 'suspended' });
      const stopped = await waitForEvent(store(), streamName('container', s.containerId), ContainerStopped);
      expect(stopped.data).toMatchObject({ reason: 'suspended', walletId: wallet });
      const samples = await samplesOf(store(), s.containerId);
      expect(samples[samples.length - 1].final).toBe(true);
    }
    expect((await nodeContainers(cm.docker, nodeA)).map((x) => x.Labels['mesh.container'])).not.toContain(a.containerId);
    expect((await nodeContainers(cm.docker, nodeB)).map((x) => x.Labels['mesh.container'])).not.toContain(b.containerId);
    expect(terminalOf(await waitForEnd(store(), c.executionId)).type).toBe('ExecutionSucceeded');
  });

  it('kills a cancelled task', async () => {
    const d = await dispatch(store(), { nodeId: nodeB, walletId: randomId('w'), functionId: randomId('f'), script: 'sleep 60', timeoutMs: 60_000 });
    const started = await startedOf(d.executionId);
    await store().append(
      streamName('task', d.taskId),
      [
        eventOf(TaskCancelled, randomId('cancel'), {
          taskId: d.taskId,
          functionId: d.functionId,
          walletId: d.walletId,
          reason: 'user asked',
          executionId: d.executionId,
          nodeId: nodeB,
        }),
      ],
      'any',
    );
    const end = terminalOf(await waitForEnd(store(), d.executionId));
    expect(end.type).toBe('ExecutionAborted');
    expect(end.data).toMatchObject({ reason: 'cancelled' });
    expect((await waitForEvent(store(), streamName('container', started.containerId), ContainerStopped)).data).toMatchObject({ reason: 'cancelled' });
  });

  it('kills an attempt the scheduler requeued (node declared lost), and never starts a superseded dispatch', async () => {
    const d = await dispatch(store(), { nodeId: nodeA, walletId: randomId('w'), functionId: randomId('f'), script: 'sleep 60', timeoutMs: 60_000 });
    const started = await startedOf(d.executionId);
    const ref = { taskId: d.taskId, functionId: d.functionId, walletId: d.walletId };
    await store().append(
      streamName('task', d.taskId),
      [eventOf(TaskRequeued, randomId('requeue'), { ...ref, attempt: 1, reason: 'node-lost', detail: 'no heartbeat' })],
      'any',
    );
    const end = terminalOf(await waitForEnd(store(), d.executionId));
    expect(end).toMatchObject({ type: 'ExecutionAborted', data: { reason: 'superseded', attempt: 1 } });
    expect((await waitForEvent(store(), streamName('container', started.containerId), ContainerStopped)).data).toMatchObject({ reason: 'superseded' });

    // A dispatch delivered after its attempt was requeued (a node coming back) is skipped: no
    // execution stream, no container. The later, current dispatch of the same task does run, on
    // the same node, whose consumer takes task events in order: once it ran, the stale one was seen.
    const taskId = randomId('t');
    const stale = { nodeId: nodeB, walletId: randomId('w'), functionId: randomId('f'), script: 'echo stale', taskId };
    await store().append(
      streamName('task', taskId),
      [eventOf(TaskRequeued, randomId('requeue'), { taskId, functionId: stale.functionId, walletId: stale.walletId, attempt: 1, reason: 'node-lost' })],
      'any',
    );
    const skipped = await dispatch(store(), stale);
    const current = await dispatch(store(), { ...stale, script: 'echo current', attempt: 2 });
    expect(terminalOf(await waitForEnd(store(), current.executionId)).type).toBe('ExecutionSucceeded');
    expect(await store().read(streamName('execution', skipped.executionId))).toEqual([]);
  });
});
