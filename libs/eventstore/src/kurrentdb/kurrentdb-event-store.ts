import {
  KurrentDBClient,
  ANY,
  NO_STREAM,
  START,
  FORWARDS,
  WrongExpectedVersionError,
  StreamNotFoundError,
  jsonEvent,
  excludeSystemEvents,
  streamNameFilter,
} from '@kurrent/kurrentdb-client';
import type { NewEvent, RecordedEvent } from '@mesh/contracts';
import { ended, producerSpan } from '@mesh/runtime/trace';
import { assertContiguousRevisions, ConcurrencyError } from '../errors';
import { prepareEnvelopes, encodeEnvelope } from '../envelope';
import {
  READ_BATCH_MAX,
  type AppendResult,
  type EventHandler,
  type EventStore,
  type ExpectedVersion,
  type ReadAllOptions,
  type Subscription,
  type SubscriptionOptions,
} from '../port';
import { PoisonMessage } from '../poison';
import { classifyKurrentRecord, isMeshStream, toKurrentEvent, type KurrentRecord } from './mapping';

/**
 * Event store on KurrentDB/EventStoreDB (production). Streams are `<category>-<id>` as in mesh,
 * revisions are KurrentDB's stream revisions, positions are $all prepare positions. Consumers keep
 * reading JetStream: the relay (relay.ts) republishes every event there. Every read classifies
 * records as JetStream's does (classifyKurrentRecord): poison is skipped by `read`, `readAll` and
 * `subscribe` and reported to `onPoison`; the quarantine record is left to JetStream's readers of
 * the relayed copy (this adapter writes none).
 */
export class KurrentDbEventStore implements EventStore {
  readonly name = 'kurrentdb';

  private constructor(private readonly client: KurrentDBClient) {}

  static connect(connectionString: string): KurrentDbEventStore {
    return new KurrentDbEventStore(KurrentDBClient.connectionString(connectionString));
  }

  async append(stream: string, events: NewEvent[], expectedVersion: ExpectedVersion): Promise<AppendResult> {
    const envelopes = prepareEnvelopes(stream, events);
    envelopes.forEach(encodeEnvelope); // size check, same limit as JetStream
    // One append call, one PRODUCER span (when tracing): every event of it carries the span's id.
    const { traceparent, span } = producerSpan(`append ${stream}`, () => ({
      'db.system.name': 'kurrentdb',
      'mesh.event.stream': stream,
      'mesh.events': envelopes.length,
    }));
    const streamState = expectedVersion === 'any' ? ANY : expectedVersion === 'no_stream' || expectedVersion === -1 ? NO_STREAM : BigInt(expectedVersion);
    try {
      const result = await ended(span, () =>
        this.client.appendToStream(
          stream,
          envelopes.map((e) => jsonEvent(toKurrentEvent(e, traceparent) as never)),
          { streamState },
        ),
      );
      return { nextExpectedVersion: Number(result.nextExpectedRevision), position: result.position?.prepare ?? -1n };
    } catch (err) {
      if (err instanceof WrongExpectedVersionError) {
        const actual = typeof err.actualState === 'bigint' ? Number(err.actualState) : -1;
        throw new ConcurrencyError(stream, expectedVersion, actual, { cause: err });
      }
      throw err;
    }
  }

  async read(stream: string, fromRevision = 0): Promise<RecordedEvent[]> {
    const stored: { revision: number; event: RecordedEvent | PoisonMessage }[] = [];
    try {
      for await (const resolved of this.client.readStream(stream, { fromRevision: BigInt(fromRevision), direction: FORWARDS })) {
        if (resolved.event) stored.push({ revision: Number(resolved.event.revision), event: classifyKurrentRecord(resolved.event) });
      }
    } catch (err) {
      if (err instanceof StreamNotFoundError) return [];
      throw err;
    }
    // KurrentDB's stream revisions are dense; a gap in what is returned is explained by the poison skipped.
    assertContiguousRevisions(stream, stored, fromRevision);
    return stored.flatMap((s) => (s.event instanceof PoisonMessage ? [] : [s.event]));
  }

  async readAll(options: ReadAllOptions): Promise<RecordedEvent[]> {
    const limit = Math.min(options.limit ?? READ_BATCH_MAX, READ_BATCH_MAX);
    const from = options.from <= 1n ? START : { commit: options.from, prepare: options.from };
    const events: RecordedEvent[] = [];
    for await (const resolved of this.client.readAll({ fromPosition: from, direction: FORWARDS, maxCount: limit * 2, filter: excludeSystemEvents() })) {
      const record: KurrentRecord | undefined = resolved.event;
      if (!record || !isMeshStream(record.streamId)) continue;
      const event = classifyKurrentRecord(record);
      if (event instanceof PoisonMessage) {
        if (BigInt(event.seq) >= options.from) options.onPoison?.(event); // skipped and reported (no quarantine record is written here: the relay's JetStream copy gets one)
        continue;
      }
      if (event.position < options.from) continue;
      events.push(event);
      if (events.length >= limit) break;
    }
    return events;
  }

  async headPosition(): Promise<bigint> {
    for await (const resolved of this.client.readAll({
      fromPosition: 'end' as never,
      direction: 'backwards' as never,
      maxCount: 1,
      filter: excludeSystemEvents(),
    })) {
      return resolved.event?.position?.prepare ?? 0n;
    }
    return 0n;
  }

  subscribe(options: SubscriptionOptions, handler: EventHandler): Subscription {
    const filter = options.categories?.length ? streamNameFilter({ prefixes: options.categories.map((c) => `${c}-`) }) : excludeSystemEvents();
    const subscription = this.client.subscribeToAll({
      fromPosition: options.after === 0n ? START : { commit: options.after, prepare: options.after },
      filter,
    });
    let position = options.after;
    const done = (async () => {
      for await (const resolved of subscription) {
        const record: KurrentRecord | undefined = resolved.event;
        if (!record || !isMeshStream(record.streamId)) continue;
        const event = classifyKurrentRecord(record);
        if (event instanceof PoisonMessage) {
          if (BigInt(event.seq) > options.after) {
            options.onPoison?.(event);
            position = BigInt(event.seq); // moves past it, as JetStream's subscription does
          }
          continue;
        }
        if (event.position <= options.after) continue;
        await handler(event);
        position = event.position;
      }
    })();
    done.catch(() => undefined);
    return {
      get position() {
        return position;
      },
      done,
      stop: async () => {
        await subscription.unsubscribe();
        await done.catch(() => undefined);
      },
    };
  }

  async close(): Promise<void> {
    await this.client.dispose();
  }
}
