/**
 * Turning cumulative counter readings into usage windows. Each window's CPU is the difference of
 * the container's cumulative CPU counter, so consecutive windows tile the container's life and
 * their sum equals the counter: nothing is lost between samples, nothing is counted twice.
 */
export interface SampleCursor {
  /** Seq of the last sample written (0 = none yet). */
  seq: number;
  /** Cumulative CPU counter (ns) at the end of the last window. */
  cpuNanosTotal: number;
  /** End of the last window (epoch ms). */
  atMs: number;
  /** Memory in use at the end of the last window. */
  memoryBytes: number;
}

export interface CounterReading {
  cpuNanosTotal: number;
  memoryBytes: number;
  memoryBytesMax?: number;
}

export interface SampleWindow {
  seq: number;
  windowStartMs: number;
  windowEndMs: number;
  cpuNanos: number;
  cpuNanosTotal: number;
  memoryBytesAvg: number;
  memoryBytesMax: number;
}

export function initialCursor(reading: CounterReading, atMs: number): SampleCursor {
  return { seq: 0, cpuNanosTotal: reading.cpuNanosTotal, atMs, memoryBytes: reading.memoryBytes };
}

/**
 * The next window from the cursor to `reading` taken at `nowMs`. A counter that went backwards (a
 * different cgroup after a restart) contributes 0 and becomes the new base, rather than a negative
 * or double charge. Memory: average of the two end points, max of them and the kernel's high-water
 * mark of the window when it has one.
 */
export function nextWindow(cursor: SampleCursor, reading: CounterReading, nowMs: number): { window: SampleWindow; cursor: SampleCursor } {
  const windowEndMs = Math.max(nowMs, cursor.atMs);
  const cpuNanos = Math.max(0, reading.cpuNanosTotal - cursor.cpuNanosTotal);
  const memoryBytesAvg = Math.floor((cursor.memoryBytes + reading.memoryBytes) / 2);
  const memoryBytesMax = Math.max(cursor.memoryBytes, reading.memoryBytes, reading.memoryBytesMax ?? 0);
  const seq = cursor.seq + 1;
  return {
    window: { seq, windowStartMs: cursor.atMs, windowEndMs, cpuNanos, cpuNanosTotal: reading.cpuNanosTotal, memoryBytesAvg, memoryBytesMax },
    cursor: { seq, cpuNanosTotal: reading.cpuNanosTotal, atMs: windowEndMs, memoryBytes: reading.memoryBytes },
  };
}

/** The window that closes a container whose counters can no longer be read (its cgroup is gone). */
export function closingWindow(cursor: SampleCursor, nowMs: number): { window: SampleWindow; cursor: SampleCursor } {
  return nextWindow(cursor, { cpuNanosTotal: cursor.cpuNanosTotal, memoryBytes: cursor.memoryBytes }, nowMs);
}
