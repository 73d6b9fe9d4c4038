import { NodeRegistered, streamName, type RecordedEvent } from '@mesh/contracts';
import { InMemoryEventStore } from '@mesh/eventstore/memory/in-memory-event-store';
import { eventually } from '@mesh/testing';
import { DRAIN_SETTLE_MS, NodeDrain } from './node-drain';

const register = (store: InMemoryEventStore, nodeId: string, atMs: number) =>
  store.append(
    streamName('node', nodeId),
    [{ id: `${nodeId}-up-${atMs}`, type: NodeRegistered.type, data: { nodeId, cpuMillis: 1000, memoryBytes: 1024 ** 3, labels: {}, registeredAtMs: atMs } }],
    'any',
  );
const types = async (store: InMemoryEventStore, nodeId: string) => (await store.read(streamName('node', nodeId))).map((e: RecordedEvent) => e.type);

describe('NodeDrain (the node side of a drain)', () => {
  it('a drain asked through another node is seen on the consumer; the node leaves once idle and past the settle time, once', async () => {
    const store = new InMemoryEventStore();
    await register(store, 'n2', 1);
    const other = new NodeDrain(store, 'n1');
    const self = new NodeDrain(store, 'n2');
    await expect(other.request('n2', 100)).resolves.toEqual({ nodeId: 'n2', state: 'draining', requestedAtMs: 100 });
    await expect(other.request('n2', 200)).resolves.toEqual({ nodeId: 'n2', state: 'draining', requestedAtMs: 100 }); // idempotent
    const [, drain] = await store.read(streamName('node', 'n2'));
    self.observe(drain, 1000);
    expect(self.draining).toBe(true);
    self.tick(1, 1000 + DRAIN_SETTLE_MS); // a task still runs
    self.tick(0, 1000 + DRAIN_SETTLE_MS - 1); // too early: a dispatch may still be on its way
    expect(await types(store, 'n2')).toEqual(['NodeRegistered', 'NodeDrainRequested']);
    self.tick(0, 1000 + DRAIN_SETTLE_MS);
    await eventually(() => self.left || undefined, 5000, 'the node left');
    self.tick(0, 9999);
    expect(await types(store, 'n2')).toEqual(['NodeRegistered', 'NodeDrainRequested', 'NodeLeft']);
    expect((await store.read(streamName('node', 'n2'))).at(-1)?.data).toMatchObject({ reason: 'drained' });
    await expect(other.request('n2', 300)).rejects.toThrow(/has left/);
  });

  it('a drain goes on after a crash: the node, registered again, resumes it at start', async () => {
    const store = new InMemoryEventStore();
    await register(store, 'n2', 1);
    await new NodeDrain(store, 'n1').request('n2', 100);
    await register(store, 'n2', 500); // crashed (no NodeLeft) and started again
    const restarted = new NodeDrain(store, 'n2');
    await restarted.resume(600);
    expect(restarted.draining).toBe(true);
  });

  it('refuses to drain a node that never registered, and writes nothing', async () => {
    const store = new InMemoryEventStore();
    await expect(new NodeDrain(store, 'n1').request('ghost', 1)).rejects.toThrow(/never registered/);
    expect(await store.read(streamName('node', 'ghost'))).toEqual([]);
  });
});
