import { CATEGORY_OWNERS, ContractError, catalog, parseStreamName, type NewEvent, type ServiceName } from '@mesh/contracts';
import { CategoryOwnershipError } from '@mesh/eventstore/errors';
import type { AppendResult, EventHandler, EventStore, ExpectedVersion, ReadAllOptions, Subscription, SubscriptionOptions } from '@mesh/eventstore/port';
import { currentMessageContext } from './trace';

/** Who may write where: a service, or `*` (tools and tests that may write any category). */
export type Writer = ServiceName | '*';

/**
 * The store every service writes through. Before anything is written it refuses an append by a
 * service to a category it does not own (CATEGORY_OWNERS: one writer per category; the `'*'`
 * categories, deadletter and test, are open) and events that name another stream, then checks each
 * event against the catalog (type, category, data). Each event inherits the correlation id of the
 * message being handled, with that message as its cause, so every charge can be followed back to
 * its sample.
 */
export class ValidatingEventStore implements EventStore {
  /**
   * @param service the service writing (startService passes the service being started); `'*'`
   *   skips the ownership check, for tools that are no service.
   */
  constructor(
    private readonly inner: EventStore,
    readonly service: Writer,
  ) {}

  get name(): string {
    return this.inner.name;
  }

  append(stream: string, events: NewEvent[], expectedVersion: ExpectedVersion): Promise<AppendResult> {
    const { category } = parseStreamName(stream);
    const owner: string = CATEGORY_OWNERS[category];
    if (owner !== '*' && this.service !== '*' && owner !== this.service) throw new CategoryOwnershipError(this.service, stream, owner);
    const context = currentMessageContext();
    const checked = events.map((event, index) => {
      // A recorded event handed back to append (or any event naming its stream) must name this one.
      if ('stream' in event && event.stream !== stream) {
        throw ContractError.single('append', `events.${index}.stream`, `is ${String(event.stream)}, not the stream appended to (${stream})`);
      }
      return {
        ...event,
        data: catalog.validate(event.type, category, event.data),
        correlationId: event.correlationId ?? context?.correlationId,
        causationId: event.causationId ?? context?.causationId,
      };
    });
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
