import { catalog, parseStreamName, type NewEvent } from '@mesh/contracts';
import type { AppendResult, EventHandler, EventStore, ExpectedVersion, ReadAllOptions, Subscription, SubscriptionOptions } from '@mesh/eventstore/port';
import { currentMessageContext } from './trace';

/**
 * The store every service writes through: each event is checked against the catalog (type,
 * category, data) before anything is written, and inherits the correlation id of the message being
 * handled with that message as its cause, so every charge can be followed back to its sample.
 */
export class ValidatingEventStore implements EventStore {
  constructor(private readonly inner: EventStore) {}

  get name(): string {
    return this.inner.name;
  }

  append(stream: string, events: NewEvent[], expectedVersion: ExpectedVersion): Promise<AppendResult> {
    const { category } = parseStreamName(stream);
    const context = currentMessageContext();
    const checked = events.map((event) => ({
      ...event,
      data: catalog.validate(event.type, category, event.data),
      correlationId: event.correlationId ?? context?.correlationId,
      causationId: event.causationId ?? context?.causationId,
    }));
    return this.inner.append(stream, checked, expectedVersion);
  }

  read(stream: string, fromRevision?: number) {
    return this.inner.read(stream, fromRevision);
  }
  readAll(options: ReadAllOptions) {
    return this.inner.readAll(options);
  }
  headPosition() {
    return this.inner.headPosition();
  }
  subscribe(options: SubscriptionOptions, handler: EventHandler): Subscription {
    return this.inner.subscribe(options, handler);
  }
  close() {
    return this.inner.close();
  }
}
