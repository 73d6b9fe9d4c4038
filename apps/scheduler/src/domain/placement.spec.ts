import { containerKey, place, reliabilityOf, type PlacementNode } from './placement';

const GiB = 1024 ** 3;
const node = (nodeId: string, o: Partial<PlacementNode> = {}): PlacementNode => ({
  nodeId,
  schedulable: true,
  cpuMillis: 4000,
  memoryBytes: 8 * GiB,
  reservedCpuMillis: 0,
  reservedMemoryBytes: 0,
  idleKeys: new Set(),
  busyKeys: new Map(),
  reliability: 1,
  ...o,
});
const key = containerKey('w1', 'fn');
const demand = { key, cpuMillis: 1000, memoryBytes: GiB };

describe('placement', () => {
  it('chooses the least loaded node with room', () => {
    const nodes = [node('a', { reservedCpuMillis: 2000 }), node('b', { reservedCpuMillis: 1000 }), node('c', { reservedCpuMillis: 3500 })];
    expect(place(nodes, demand)).toEqual({ ok: true, nodeId: 'b', warm: false });
  });
  it('prefers a node with an idle warm container of the (wallet, function), even if busier', () => {
    const nodes = [node('a'), node('b', { reservedCpuMillis: 2000, idleKeys: new Set([key]) })];
    expect(place(nodes, demand)).toEqual({ ok: true, nodeId: 'b', warm: true });
  });
  it('counts heartbeat usage above the reservations, except for the warm container already inside it', () => {
    expect(place([node('a', { usedCpuMillis: 3500 })], demand)).toEqual({ ok: false, reason: 'no-capacity' });
    expect(place([node('a', { usedCpuMillis: 3500, idleKeys: new Set([key]) })], demand)).toEqual({ ok: true, nodeId: 'a', warm: true });
    expect(place([node('a', { usedMemoryBytes: 7.5 * GiB })], demand)).toEqual({ ok: false, reason: 'no-capacity' });
  });
  it('prefers the more reliable of equally loaded nodes', () => {
    const nodes = [node('a', { reliability: reliabilityOf(0, 2) }), node('b', { reliability: reliabilityOf(10, 0) })];
    expect(place(nodes, demand)).toMatchObject({ ok: true, nodeId: 'b' });
  });
  it('never places on a node where the (wallet, function) container is busy', () => {
    const busy = new Map([[key, 1]]);
    expect(place([node('a', { busyKeys: busy }), node('b', { reservedCpuMillis: 2500 })], demand)).toMatchObject({ ok: true, nodeId: 'b' });
    expect(place([node('a', { busyKeys: busy })], demand)).toEqual({ ok: false, reason: 'container-busy' });
    // another wallet's task of the same function is not affected
    expect(place([node('a', { busyKeys: busy })], { ...demand, key: containerKey('w2', 'fn') })).toMatchObject({ ok: true, nodeId: 'a' });
  });
  it('skips lost, left or unregistered nodes and says why nothing fits', () => {
    expect(place([node('a', { schedulable: false })], demand)).toEqual({ ok: false, reason: 'no-nodes' });
    expect(place([], demand)).toEqual({ ok: false, reason: 'no-nodes' });
    expect(place([node('a', { cpuMillis: 500 })], demand)).toEqual({ ok: false, reason: 'exceeds-node-capacity' });
    expect(place([node('a', { reservedCpuMillis: 3500 })], demand)).toEqual({ ok: false, reason: 'no-capacity' });
  });
  it('fits exactly at the capacity boundary and breaks ties by node id', () => {
    expect(place([node('b', { reservedCpuMillis: 3000 }), node('a', { reservedCpuMillis: 3000 })], demand)).toEqual({ ok: true, nodeId: 'a', warm: false });
  });
  it('places a network-enabled function only on a node that offers network', () => {
    const nodes = [node('a', { network: false }), node('b', { reservedCpuMillis: 3000 })];
    expect(place(nodes, { ...demand, network: true })).toEqual({ ok: true, nodeId: 'b', warm: false });
    expect(place(nodes, demand)).toEqual({ ok: true, nodeId: 'a', warm: false });
    expect(place([node('a', { network: false })], { ...demand, network: true })).toEqual({ ok: false, reason: 'no-network-node' });
    // a node registered by an older container-manager (no `network` field) offers network
    expect(place([node('a')], { ...demand, network: true })).toMatchObject({ ok: true, nodeId: 'a' });
  });
  it('spreads tasks over nodes in proportion to their capacity (each placement reserves its demand)', () => {
    const nodes = [node('big', { cpuMillis: 8000, memoryBytes: 16 * GiB }), node('small', { cpuMillis: 4000, memoryBytes: 8 * GiB })];
    const placed = new Map<string, number>();
    for (let i = 0; i < 12; i++) {
      const p = place(nodes, { key: containerKey(`w${i}`, 'fn'), cpuMillis: 1000, memoryBytes: GiB });
      if (!p.ok) throw new Error(`task ${i} not placed: ${p.reason}`);
      const n = nodes.find((x) => x.nodeId === p.nodeId)!;
      n.reservedCpuMillis += 1000;
      n.reservedMemoryBytes += GiB;
      placed.set(p.nodeId, (placed.get(p.nodeId) ?? 0) + 1);
    }
    expect(Object.fromEntries(placed)).toEqual({ big: 8, small: 4 });
  });
  it('reliability is smoothed: a new node is fully reliable, each loss lowers it', () => {
    expect(reliabilityOf(0, 0)).toBe(1);
    expect(reliabilityOf(0, 1)).toBe(0.5);
    expect(reliabilityOf(9, 1)).toBeCloseTo(10 / 11);
  });
});
