import { Logger } from '@nestjs/common';
import { KeyedMutex, messageOf } from '@mesh/common';
import { eventOf, ResourceSampled, streamName, type EventData } from '@mesh/contracts';
import type { EventStore } from '@mesh/eventstore/port';
import { appendWithLongRetry } from './append';
import type { DockerEngine } from './docker/docker-engine';
import { eventId } from './domain/event-ids';
import { closingWindow, nextWindow, type CounterReading, type SampleWindow } from './domain/sample-window';
import { fatal } from './fatal';
import type { LiveContainer, NodeState } from './node-state';

/**
 * Resource sampling (stream `usage-<containerId>`): reads each container's cumulative counters and
 * records the window since the last RECORDED reading as ResourceSampled, `seq` 1, 2, 3 ..., id
 * `<containerId>-<seq>`, expected version `seq - 2` (single writer).
 *
 * A sample is recorded exactly once whatever fails: the container's cursor (`LiveContainer.cursor`)
 * moves only once the store acknowledged the append. An append the store does not acknowledge is
 * retried with the very same event (same id, same window) for up to `appendRetryMs`; meanwhile the
 * interval's ticks for that container are skipped, so the usage of the outage lands in ONE window,
 * recorded as soon as the store is back (from the recorded counter to the next reading): the sum of
 * a container's `cpuNanos` stays equal to its counter, nothing is queued without bound. Only past
 * the bound does the process exit (fatal); the restart resumes from the last recorded counter.
 */
export class Sampler {
  private readonly reads = new KeyedMutex();
  private readonly appends = new KeyedMutex();
  /** Containers with a sample read but not yet acknowledged: their ticks are merged into the next window. */
  private readonly unacknowledged = new Set<string>();
  private readonly log: Logger;

  constructor(
    private readonly store: EventStore,
    private readonly docker: DockerEngine,
    private readonly node: NodeState,
    private readonly appendRetryMs: number,
  ) {
    this.log = new Logger(`container-manager:${node.nodeId}`);
  }

  /** One tick: every live container (idle ones too: they hold memory). */
  sampleAll(): void {
    for (const c of this.node.containers.values()) {
      if (c.status !== 'stopping') void this.sample(c, false);
    }
  }

  /**
   * Reads the counters and queues the window's append; resolves once read (the kill may follow at
   * once). `final`: the closing sample before the kill; it is read even while an earlier sample
   * waits for the store, and recorded after it (its window starts where that one ends).
   */
  sample(c: LiveContainer, final: boolean): Promise<void> {
    return this.reads
      .run(c.containerId, async () => {
        if (c.finalTaken) return;
        if (!final && this.unacknowledged.has(c.containerId)) return;
        const reading = await this.docker.readCounters(c.dockerId, c.cgroup);
        const readAtMs = Date.now();
        if (!reading && !final) return;
        if (final) c.finalTaken = true;
        else this.docker.resetMemoryMax(c.cgroup);
        this.unacknowledged.add(c.containerId);
        void this.appends
          .run(c.containerId, () => this.record(c, reading, readAtMs, final))
          .catch((err) => fatal(`a sample of ${c.containerId} not recorded`, err));
      })
      .catch((err) => this.log.error(`sampling ${c.containerId}: ${messageOf(err)}`));
  }

  /** Resolves once the samples read so far are recorded. */
  async recorded(containerId: string): Promise<void> {
    await this.appends.run(containerId, async () => undefined);
  }

  /** The window from the recorded cursor to `reading`, appended (long retry) and only then made the cursor. */
  private async record(c: LiveContainer, reading: CounterReading | undefined, readAtMs: number, final: boolean): Promise<void> {
    const next = reading ? nextWindow(c.cursor, reading, readAtMs) : closingWindow(c.cursor, readAtMs);
    const data = this.sampleData(c, next.window, final);
    const expected = data.seq === 1 ? 'no_stream' : data.seq - 2;
    const event = eventOf(ResourceSampled, data.sampleId, data);
    let retried = false;
    try {
      await appendWithLongRetry(this.store, streamName('usage', c.containerId), [event], expected, this.appendRetryMs, (err, attempt) => {
        if (attempt === 1) this.log.warn(`sample ${data.sampleId} not acknowledged, retrying it for up to ${this.appendRetryMs} ms: ${messageOf(err)}`);
        retried = true;
      });
    } catch (err) {
      fatal(`sample ${data.sampleId} not recorded within USAGE_APPEND_RETRY_MS (${this.appendRetryMs} ms)`, err);
    }
    if (retried) this.log.log(`sample ${data.sampleId} recorded after the store came back (window ${data.windowStartMs}..${data.windowEndMs})`);
    c.cursor = next.cursor;
    this.unacknowledged.delete(c.containerId);
  }

  private sampleData(c: LiveContainer, w: SampleWindow, final: boolean): EventData<typeof ResourceSampled> {
    const taskId = c.execution?.ref.taskId;
    return {
      sampleId: eventId(c.containerId, w.seq),
      ...this.node.containerRef(c),
      seq: w.seq,
      ...(taskId === undefined ? {} : { taskId }),
      windowStartMs: w.windowStartMs,
      windowEndMs: w.windowEndMs,
      cpuNanos: w.cpuNanos,
      cpuNanosTotal: w.cpuNanosTotal,
      memoryBytesAvg: w.memoryBytesAvg,
      memoryBytesMax: w.memoryBytesMax,
      cpuLimitMillis: c.cpuMillis,
      memoryLimitBytes: c.memoryBytes,
      final,
    };
  }
}
