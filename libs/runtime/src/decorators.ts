import { applyDecorators } from '@nestjs/common';
import { EventPattern, MessagePattern } from '@nestjs/microservices';
import { categorySubject, type Category, type RequestDefinition } from '@mesh/contracts';

/** Request definitions by subject, so the transport validates each request before the handler runs. */
export const requestRegistry = new Map<string, RequestDefinition>();

/** A command or query handler: NATS request/reply on `definition.subject`, body validated first. */
export function OnRequest(definition: RequestDefinition): MethodDecorator {
  requestRegistry.set(definition.subject, definition);
  return applyDecorators(MessagePattern(definition.subject));
}

export interface EventConsumerOptions {
  /** Distinguishes two consumers of one category in the same service. */
  name?: string;
  /** Hard bound on deliveries of a failing event within the retry window, then it is parked (default CONSUMER_MAX_DELIVERIES). */
  maxDeliveries?: number;
  /** Events handed out by the server before the first ack (default 256). */
  maxAckPending?: number;
  /**
   * Handler calls in flight at once (default 1: strictly one at a time, in log order). More only for
   * handlers that serialise what must be serialised themselves (e.g. per aggregate) and don't need
   * log order; each event is still acked or nak'd on its own.
   */
  concurrency?: number;
  /**
   * Where a new durable consumer starts: 'all' (default) replays history, 'new' only sees events
   * appended after it was created (e.g. commands like dispatches that are stale after a restart).
   */
  deliver?: 'all' | 'new';
  /**
   * Work ordered per key (a container's samples, a charge's meter stream): in a partitioned log the
   * consumer is one durable per partition, each run by whichever replica holds that partition's
   * lease, so replicas share the work and each id stays in order (docs/cluster.md "Partitions").
   * In the plain layout it is one consumer run by the leader, as any other.
   */
  partitioned?: boolean;
  /**
   * Facts every replica needs in a partitioned log (e.g. the scaler's wallet standings and nodes:
   * every partition owner acts on them): each replica runs its own durable (named by its instance),
   * whatever it leads. In the plain layout one consumer run by the leader, as any other.
   */
  everyReplica?: boolean;
}

export interface EventConsumerExtras extends EventConsumerOptions {
  category: Category;
}

/**
 * A durable JetStream consumer of one category (`mesh.events.<category>.*`). The handler gets the
 * validated RecordedEvent; it is acked when the handler resolves and nak'd with capped backoff when
 * it throws, for CONSUMER_RETRY_WINDOW_MS (or until `maxDeliveries`), after which it is parked as a
 * dead letter and skipped; `mesh deadletter replay` runs this handler on it again (docs/deadletters.md).
 */
export function OnEvents(category: Category, options: EventConsumerOptions = {}): MethodDecorator {
  const extras: EventConsumerExtras = { category, ...options };
  const pattern = options.name ? `${categorySubject(category)}#${options.name}` : categorySubject(category);
  return applyDecorators(EventPattern(pattern, extras as unknown as Record<string, unknown>));
}
