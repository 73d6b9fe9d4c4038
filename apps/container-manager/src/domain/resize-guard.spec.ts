import { MEMORY_MIN_BYTES } from '../docker/sandbox';
import { guardResize, type NodeCapacity, type ResizeTarget } from './resize-guard';

const GiB = 1024 ** 3;
const node: NodeCapacity = { cpuMillis: 4000, memoryBytes: 8 * GiB };
const container: ResizeTarget = { walletId: 'w1', functionId: 'f1', cpuMinMillis: 250, cpuMaxMillis: 2000 };
const decision = (toCpuMillis: number, toMemoryBytes: number, owner = { walletId: 'w1', functionId: 'f1' }) => ({ ...owner, toCpuMillis, toMemoryBytes });

describe('guardResize: a scaling decision is applied only inside the function and node limits', () => {
  it('given a decision inside every limit, when guarded, then it is applied as decided', () => {
    expect(guardResize(decision(1500, GiB), container, node)).toEqual({ apply: true, toCpuMillis: 1500, toMemoryBytes: GiB, clamped: [] });
  });

  it('given a decision above the function cpuMax, when guarded, then CPU is clamped to cpuMax and the reason names it', () => {
    const verdict = guardResize(decision(64_000, GiB), container, node);
    expect(verdict).toMatchObject({ apply: true, toCpuMillis: 2000, toMemoryBytes: GiB });
    expect(verdict.apply && verdict.clamped.join()).toMatch(/CPU 64000 millicores clamped to 2000 .*cpuMax 2000/);
  });

  it('given a decision below the function cpuMin, when guarded, then CPU is raised to cpuMin', () => {
    expect(guardResize(decision(10, GiB), container, node)).toMatchObject({ apply: true, toCpuMillis: 250 });
  });

  it('given a function cpuMax above what the node has, when guarded, then CPU is clamped to the node', () => {
    const big: ResizeTarget = { ...container, cpuMaxMillis: 16_000 };
    expect(guardResize(decision(16_000, GiB), big, node)).toMatchObject({ apply: true, toCpuMillis: 4000 });
  });

  it('given a memory limit above the node memory or below the Docker minimum, when guarded, then memory is clamped', () => {
    expect(guardResize(decision(1000, 64 * GiB), container, node)).toMatchObject({ apply: true, toMemoryBytes: 8 * GiB });
    expect(guardResize(decision(1000, 1024), container, node)).toMatchObject({ apply: true, toMemoryBytes: MEMORY_MIN_BYTES });
  });

  it('given a decision for a container the node does not run, when guarded, then it is refused', () => {
    expect(guardResize(decision(1000, GiB), undefined, node)).toEqual({ apply: false, refused: 'this node runs no such container' });
  });

  it("given a decision naming another wallet or function than the container's, when guarded, then it is refused", () => {
    expect(guardResize(decision(1000, GiB, { walletId: 'w2', functionId: 'f1' }), container, node)).toMatchObject({ apply: false });
    expect(guardResize(decision(1000, GiB, { walletId: 'w1', functionId: 'f2' }), container, node)).toMatchObject({ apply: false });
  });
});
