import { Logger } from '@nestjs/common';
import { KeyedMutex, messageOf } from '@mesh/common';
import { eventOf, ResourceSampled, streamName, type EventData } from '@mesh/contracts';
import type { EventStore } from '@mesh/eventstore/port';
import { appendWithRetry } from './append';
import type { DockerEngine } from './docker/docker-engine';
import { eventId } from './domain/event-ids';
import { closingWindow, nextWindow, type SampleCursor, type SampleWindow } from './domain/sample-window';
import { fatal } from './fatal';
import type { LiveContainer, NodeState } from './node-state';

/**
 * Resource sampling (stream `usage-<containerId>`): reads each container's cumulative counters and
 * records the window since the last reading as ResourceSampled, `seq` 1, 2, 3 ..., id
 * `<containerId>-<seq>`, expected version `seq - 2` (single writer). Reads are serialized per
 * container (the cursor moves in order) and so are the appends (seq order); a read does not wait
 * for the previous append. A sample that cannot be recorded after every retry ends the process
 * (fatal): the restart resumes from the last recorded counter, so no window is lost or doubled.
 */
export class Sampler {
  private readonly reads = new KeyedMutex();
  private readonly appends = new KeyedMutex();
  private readonly log: Logger;

  constructor(
    private readonly store: EventStore,
    private readonly docker: DockerEngine,
    private readonly node: NodeState,
  ) {
    this.log = new Logger(`container-manager:${node.nodeId}`);
  }

  /** One tick: every live container (idle ones too: they hold memory). */
  sampleAll(): void {
    for (const c of this.node.containers.values()) {
      if (c.status !== 'stopping') void this.sample(c, false);
    }
  }

  /** Reads and records one window; resolves once read (the append follows in seq order). `final`: the closing sample before the kill. */
  sample(c: LiveContainer, final: boolean): Promise<void> {
    return this.reads
      .run(c.containerId, async () => {
        if (c.finalTaken) return;
        const reading = await this.docker.readCounters(c.dockerId, c.cgroup);
        const now = Date.now();
        let next: { window: SampleWindow; cursor: SampleCursor };
        if (reading) next = nextWindow(c.cursor, reading, now);
        else if (final) next = closingWindow(c.cursor, now);
        else return;
        if (final) c.finalTaken = true;
        else this.docker.resetMemoryMax(c.cgroup);
        c.cursor = next.cursor;
        const data = this.sampleData(c, next.window, final);
        const expected = data.seq === 1 ? 'no_stream' : data.seq - 2;
        const event = eventOf(ResourceSampled, data.sampleId, data);
        void this.appends
          .run(c.containerId, () => appendWithRetry(this.store, streamName('usage', c.containerId), [event], expected))
          .catch((err) => fatal(`sample ${data.sampleId} not recorded`, err));
      })
      .catch((err) => this.log.error(`sampling ${c.containerId}: ${messageOf(err)}`));
  }

  /** Resolves once the samples read so far are recorded. */
  async recorded(containerId: string): Promise<void> {
    await this.appends.run(containerId, async () => undefined);
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
