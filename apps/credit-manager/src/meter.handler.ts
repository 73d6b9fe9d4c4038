import { Logger } from '@nestjs/common';
import { LRUCache, retry } from '@mesh/common';
import { isEventOf, meterEvents, streamName, type NewEvent, type RecordedEvent, type RecordedOf, type ResourceSampled } from '@mesh/contracts';
import { ConcurrencyError } from '@mesh/eventstore/errors';
import type { EventStore, ExpectedVersion } from '@mesh/eventstore/port';
import { anomalyIdOf } from './domain/event-ids';
import { decideMeter, evolveMeter, initialMeterState, type MeterDecision, type MeterState } from './domain/meter-decider';
import type { Sample } from './domain/pricing';
import type { PricePlanView } from './price-plan.view';

/** Conflicts in a row before a sample is nak'd (another writer of the same meter stream). */
const APPEND_RETRIES_MAX = 5;

interface Meter {
  state: MeterState;
  /** Revision of the last event of `meter-<containerId>`; -1 for none. */
  version: number;
}

export function toNewMeterEvent(event: MeterDecision): NewEvent {
  const id = event.type === 'UsageCharged' ? event.data.chargeId : anomalyIdOf(event.data.reason, event.data.sampleId);
  return { id, type: event.type, data: event.data };
}

export function foldMeter(events: RecordedEvent[]): Meter {
  let state = initialMeterState();
  for (const e of events) if (isEventOf(e, meterEvents)) state = evolveMeter(state, e);
  return { state, version: events.length ? events[events.length - 1].revision : -1 };
}

/**
 * Turns each ResourceSampled into a charge on the container's meter stream, straight in the handler
 * (no batching: the charge is the first step of the reaction path). The meter state of busy
 * containers stays in memory with its stream version; the append names that version, so a second
 * writer shows up as a conflict and the meter is reloaded from the log.
 */
export class MeterHandler {
  private readonly log = new Logger('Meter');
  private readonly meters: LRUCache<string, Meter>;
  /** taskId -> containers that charged it, for the charges query (bounded, least recently used out). */
  private readonly taskContainers: LRUCache<string, Set<string>>;

  constructor(
    private readonly store: EventStore,
    private readonly plans: PricePlanView,
    private readonly providerWalletId: string,
    limits: { metersMax: number; tasksMax: number },
  ) {
    this.meters = new LRUCache({ max: limits.metersMax });
    this.taskContainers = new LRUCache({ max: limits.tasksMax });
  }

  indexTask(taskId: string | undefined, containerId: string): void {
    if (!taskId) return;
    const set = this.taskContainers.get(taskId) ?? new Set<string>();
    set.add(containerId);
    this.taskContainers.set(taskId, set);
  }

  /** The task index, least recently used first (re-indexing in this order restores it; for the snapshot). */
  *taskIndex(): Generator<{ taskId: string; containerIds: string[] }> {
    for (const taskId of this.taskContainers.rkeys()) {
      const set = this.taskContainers.peek(taskId);
      if (set) yield { taskId, containerIds: [...set] };
    }
  }

  containersOfTask(taskId: string): string[] {
    return [...(this.taskContainers.get(taskId) ?? [])];
  }

  /**
   * Charges one sample. A conflict (another writer of the meter stream) drops the cached meter and
   * the sample is decided again on a reload, at most APPEND_RETRIES_MAX times; then, like any other
   * failure, it propagates and the consumer naks the sample (redelivered later).
   */
  async onSample(event: RecordedOf<typeof ResourceSampled>): Promise<void> {
    const sample = event.data;
    const stream = streamName('meter', sample.containerId);
    await retry(
      `${stream} sample ${sample.sampleId}`,
      async () => {
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
        } catch (err) {
          this.meters.delete(sample.containerId);
          throw err;
        }
      },
      {
        attempts: APPEND_RETRIES_MAX + 1,
        baseDelayMs: 1,
        maxDelayMs: 100,
        retryable: (err) => err instanceof ConcurrencyError,
        onRetry: () => this.log.warn(`${stream}: conflict, reloading`),
      },
    );
  }

  /** Keeps the meter in memory, except after the container's final sample (late ones reload it). */
  private remember(sample: Sample, meter: Meter): void {
    if (sample.final) this.meters.delete(sample.containerId);
    else this.meters.set(sample.containerId, meter);
  }
}
