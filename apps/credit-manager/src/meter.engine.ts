import { Logger } from '@nestjs/common';
import { streamName, type NewEvent, type RecordedEvent } from '@mesh/contracts';
import { ConcurrencyError } from '@mesh/eventstore/errors';
import type { EventStore, ExpectedVersion } from '@mesh/eventstore/port';
import { anomalyIdOf } from './domain/event-ids';
import { decideMeter, evolveMeter, initialMeterState, type MeterEvent, type MeterState } from './domain/meter-decider';
import type { Sample } from './domain/pricing';
import { BoundedCache } from './lru';
import type { PlanBook } from './plan-book';

/** Conflicts in a row before a sample is nak'd (another writer of the same meter stream). */
const APPEND_RETRIES_MAX = 5;

interface Meter {
  state: MeterState;
  /** Revision of the last event of `meter-<containerId>`; -1 for none. */
  version: number;
}

export function toNewMeterEvent(event: MeterEvent): NewEvent {
  const id = event.type === 'UsageCharged' ? event.data.chargeId : anomalyIdOf(event.data.reason, event.data.sampleId);
  return { id, type: event.type, data: event.data };
}

export function foldMeter(events: RecordedEvent[]): Meter {
  let state = initialMeterState();
  for (const e of events) if (e.type === 'UsageCharged' || e.type === 'UsageAnomalyRecorded') state = evolveMeter(state, e as unknown as MeterEvent);
  return { state, version: events.length ? events[events.length - 1].revision : -1 };
}

/**
 * Turns each ResourceSampled into a charge on the container's meter stream, straight in the handler
 * (no batching: the charge is the first step of the reaction path). The meter state of busy
 * containers stays in memory with its stream version; the append names that version, so a second
 * writer shows up as a conflict and the meter is reloaded from the log.
 */
export class MeterEngine {
  private readonly log = new Logger('Meter');
  private readonly meters: BoundedCache<string, Meter>;
  /** taskId -> containers that charged it, for the charges query (bounded, oldest first out). */
  private readonly taskContainers: BoundedCache<string, Set<string>>;

  constructor(
    private readonly store: EventStore,
    private readonly plans: PlanBook,
    private readonly providerWalletId: string,
    limits: { metersMax: number; tasksMax: number },
  ) {
    this.meters = new BoundedCache(limits.metersMax);
    this.taskContainers = new BoundedCache(limits.tasksMax);
  }

  indexTask(taskId: string | undefined, containerId: string): void {
    if (!taskId) return;
    const set = this.taskContainers.get(taskId) ?? new Set<string>();
    set.add(containerId);
    this.taskContainers.set(taskId, set);
  }

  containersOfTask(taskId: string): string[] {
    return [...(this.taskContainers.get(taskId) ?? [])];
  }

  async onSample(event: RecordedEvent): Promise<void> {
    const sample = event.data as Sample;
    const stream = streamName('meter', sample.containerId);
    for (let attempt = 0; ; attempt++) {
      const cached = this.meters.get(sample.containerId);
      const meter = cached ?? foldMeter(await this.store.read(stream));
      // Known once seen; an unknown container is looked up again on each of its samples.
      const containerKnown = cached !== undefined || (await this.store.read(streamName('container', sample.containerId))).length > 0;
      const plan = containerKnown ? await this.plans.planFor(sample.functionId, sample.windowStartMs) : undefined;
      const decided = decideMeter({ type: 'ChargeSample', sample, containerKnown, plan, providerWalletId: this.providerWalletId }, meter.state);
      if (decided.length === 0) {
        if (containerKnown) this.remember(sample, meter);
        return;
      }
      const expected: ExpectedVersion = meter.version < 0 ? 'no_stream' : meter.version;
      try {
        const result = await this.store.append(stream, decided.map(toNewMeterEvent), expected);
        let state = meter.state;
        for (const e of decided) state = evolveMeter(state, e);
        const next = { state, version: result.nextExpectedVersion };
        if (containerKnown) this.remember(sample, next);
        this.indexTask(sample.taskId, sample.containerId);
        return;
      } catch (err) {
        this.meters.delete(sample.containerId);
        if (!(err instanceof ConcurrencyError) || attempt >= APPEND_RETRIES_MAX) throw err;
        this.log.warn(`meter-${sample.containerId}: conflict at version ${meter.version}, reloading`);
      }
    }
  }

  /** Keeps the meter in memory, except after the container's final sample (late ones reload it). */
  private remember(sample: Sample, meter: Meter): void {
    if (sample.final) this.meters.delete(sample.containerId);
    else this.meters.set(sample.containerId, meter);
  }
}
