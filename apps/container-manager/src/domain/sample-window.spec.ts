import fc from 'fast-check';
import { closingWindow, initialCursor, nextWindow } from './sample-window';

describe('usage windows from cumulative counters', () => {
  it('tiles the container life: windows are contiguous and their CPU sums to the last counter', () => {
    fc.assert(
      fc.property(fc.array(fc.record({ dCpu: fc.nat(5_000_000_000), dMs: fc.nat(5000), mem: fc.nat(1 << 30) }), { minLength: 1, maxLength: 50 }), (steps) => {
        let cursor = initialCursor({ cpuNanosTotal: 0, memoryBytes: 0 }, 1000);
        let counter = 0;
        let now = 1000;
        let sum = 0;
        for (const step of steps) {
          counter += step.dCpu;
          now += step.dMs;
          const { window, cursor: next } = nextWindow(cursor, { cpuNanosTotal: counter, memoryBytes: step.mem }, now);
          expect(window.seq).toBe(cursor.seq + 1);
          expect(window.windowStartMs).toBe(cursor.atMs);
          expect(window.windowEndMs).toBeGreaterThanOrEqual(window.windowStartMs);
          expect(window.memoryBytesMax).toBeGreaterThanOrEqual(window.memoryBytesAvg);
          sum += window.cpuNanos;
          cursor = next;
        }
        expect(sum).toBe(counter);
      }),
    );
  });

  it('never charges a counter that went backwards, and re-bases on it', () => {
    const cursor = { seq: 4, cpuNanosTotal: 9_000, atMs: 100, memoryBytes: 10 };
    const { window, cursor: next } = nextWindow(cursor, { cpuNanosTotal: 1_000, memoryBytes: 10 }, 200);
    expect(window.cpuNanos).toBe(0);
    expect(next.cpuNanosTotal).toBe(1_000);
  });

  it('keeps windows ordered when the clock steps back', () => {
    const { window } = nextWindow({ seq: 1, cpuNanosTotal: 0, atMs: 500, memoryBytes: 0 }, { cpuNanosTotal: 5, memoryBytes: 0 }, 400);
    expect(window.windowEndMs).toBe(500);
  });

  it('uses the kernel high-water mark for the window maximum', () => {
    const { window } = nextWindow({ seq: 0, cpuNanosTotal: 0, atMs: 0, memoryBytes: 100 }, { cpuNanosTotal: 0, memoryBytes: 300, memoryBytesMax: 900 }, 1000);
    expect(window).toMatchObject({ memoryBytesAvg: 200, memoryBytesMax: 900 });
  });

  it('closes a container whose counters are gone with an empty final window', () => {
    const { window } = closingWindow({ seq: 7, cpuNanosTotal: 42, atMs: 1000, memoryBytes: 64 }, 1300);
    expect(window).toMatchObject({ seq: 8, cpuNanos: 0, cpuNanosTotal: 42, windowStartMs: 1000, windowEndMs: 1300 });
  });
});
