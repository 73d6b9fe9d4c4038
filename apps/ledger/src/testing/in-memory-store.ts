import type { NewEvent, RecordedEvent } from '@mesh/contracts';
import { ConcurrencyError } from '@mesh/eventstore/errors';
import type { AppendResult, EventStore, ExpectedVersion, ReadAllOptions, Subscription } from '@mesh/eventstore/port';

/**
 * A minimal in-memory EventStore for the ledger's unit and property specs (the real adapters are
 * covered by the contract suite and by the integration specs). Expected versions and idempotent
 * event ids behave like the port says; subscribe is not needed by these specs.
 */
export class InMemoryEventStore implements EventStore {
  readonly name = 'memory';
  readonly log: RecordedEvent[] = [];
  private readonly streams = new Map<string, RecordedEvent[]>();

  async append(stream: string, events: NewEvent[], expectedVersion: ExpectedVersion): Promise<AppendResult> {
    const existing = this.streams.get(stream) ?? [];
    const actual = existing.length - 1;
    const expected = expectedVersion === 'no_stream' ? -1 : expectedVersion;
    if (expected !== 'any' && expected !== actual) {
      // An idempotent retry of events already written right after `expected`.
      const already = existing.slice(expected + 1, expected + 1 + events.length);
      if (already.length === events.length && already.every((e, i) => e.id === events[i].id)) {
        return { nextExpectedVersion: expected + events.length, position: already[already.length - 1].position };
      }
      throw new ConcurrencyError(stream, expectedVersion, actual);
    }
    for (const e of events) {
      const recorded: RecordedEvent = {
        id: e.id,
        type: e.type,
        stream,
        data: JSON.parse(JSON.stringify(e.data)),
        occurredAt: e.occurredAt ?? new Date().toISOString(),
        schemaVersion: 1,
        correlationId: e.correlationId ?? e.id,
        causationId: e.causationId ?? e.id,
        revision: existing.length,
        position: BigInt(this.log.length + 1),
      };
      existing.push(recorded);
      this.log.push(recorded);
    }
    this.streams.set(stream, existing);
    return { nextExpectedVersion: existing.length - 1, position: BigInt(this.log.length) };
  }

  async read(stream: string, fromRevision = 0): Promise<RecordedEvent[]> {
    return (this.streams.get(stream) ?? []).slice(fromRevision);
  }

  async readAll(options: ReadAllOptions): Promise<RecordedEvent[]> {
    const from = Number(options.from < 1n ? 1n : options.from);
    return this.log.slice(from - 1, from - 1 + (options.limit ?? 10_000));
  }

  async headPosition(): Promise<bigint> {
    return BigInt(this.log.length);
  }

  subscribe(): Subscription {
    throw new Error('InMemoryEventStore: subscribe is not implemented');
  }

  async close(): Promise<void> {}
}
