import { Logger } from '@nestjs/common';
import { BaseRpcContext, Server, type CustomTransportStrategy, type MessageHandler } from '@nestjs/microservices';
import { lastValueFrom } from 'rxjs';
import {
  AckPolicy,
  DeliverPolicy,
  headers as natsHeaders,
  nanos,
  type ConsumerMessages,
  type JsMsg,
  type Msg,
  type NatsConnection,
  type Subscription as NatsSubscription,
} from 'nats';
import { EVENTS_STREAM, catalog, healthSubject, parseOrThrow, parseStreamName, type RecordedEvent, type ServiceName, type HealthReply } from '@mesh/contracts';
import { messageOf } from '@mesh/common';
import { decode } from '@mesh/eventstore/jetstream/jetstream-event-store';
import type { EventStore } from '@mesh/eventstore/port';
import { requestRegistry, type EventConsumerExtras } from './decorators';
import { decodeJson, encodeJson } from './json';
import { toErrorBody } from './replies';
import { inHandlerSpan, outgoingTraceparent, runInMessageContext } from './trace';

/** Backoff between redeliveries of a failing event: 200 ms doubling to at most 10 s. */
export function redeliveryDelayMs(deliveries: number): number {
  return Math.min(200 * 2 ** Math.max(0, deliveries - 1), 10_000);
}

/** What a handler receives as its Nest context: the raw JetStream message and delivery count. */
export class JetStreamContext extends BaseRpcContext<[JsMsg, number]> {
  get message(): JsMsg {
    return this.args[0];
  }
  get deliveries(): number {
    return this.args[1];
  }
}

export class NatsRequestContext extends BaseRpcContext<[Msg]> {
  get message(): Msg {
    return this.args[0];
  }
}

export interface MeshTransportOptions {
  service: ServiceName;
  nc: NatsConnection;
  store: EventStore;
  maxDeliveries: number;
  /**
   * Prefix of durable consumer names (default: the service name). Services that run one instance
   * per node (container-manager) use a per-node prefix so each instance sees every event; replicas
   * of the other services share the prefix and so share (load-balance) their consumers.
   */
  consumerPrefix?: string;
  version?: string;
  /** Extra health details (e.g. projection positions), merged into the health reply. */
  healthDetails?: () => Promise<Partial<Pick<HealthReply, 'positions' | 'details' | 'status'>>>;
}

/**
 * NestJS custom transport for mesh: `@OnRequest`/`@MessagePattern` handlers answer core NATS
 * requests (queue group per service, plain JSON so any NATS client can call them) and
 * `@OnEvents`/`@EventPattern` handlers are durable JetStream consumers with explicit ack/nak.
 */
export class MeshTransport extends Server implements CustomTransportStrategy {
  private readonly log: Logger;
  private readonly subscriptions: NatsSubscription[] = [];
  private readonly consumers: ConsumerMessages[] = [];
  private readonly loops: Promise<void>[] = [];
  private readonly positions = new Map<string, bigint>();
  private readonly startedAt = Date.now();
  private closing = false;

  constructor(private readonly options: MeshTransportOptions) {
    super();
    this.log = new Logger(`MeshTransport(${options.service})`);
  }

  async listen(callback: (...optionalParams: unknown[]) => unknown): Promise<void> {
    try {
      for (const [pattern, handler] of this.messageHandlers) {
        if (handler.isEventHandler) await this.startConsumer(pattern, handler);
        else this.subscribeRequests(pattern, handler);
      }
      // Last: a service that answers health answers every request (consumers are created with
      // awaits in between, so health first let a caller see "ok" before the handlers were there).
      this.subscribeHealth();
      callback();
    } catch (err) {
      callback(err);
    }
  }

  async close(): Promise<void> {
    this.closing = true;
    for (const sub of this.subscriptions) sub.unsubscribe();
    // nats.js resolves close() only while the messages are still being iterated; a loop that already
    // left on `closing` would leave it pending forever, so whichever ends first is enough.
    await Promise.allSettled(this.consumers.map((messages, i) => Promise.race([messages.close().catch(() => undefined), this.loops[i]])));
    await Promise.allSettled(this.loops);
  }

  on(): void {
    // Status events are the NATS connection's own (nc.status()); nothing to register here.
  }

  unwrap<T>(): T {
    return this.options.nc as T;
  }

  /** Last stream sequence each consumer has handled, by durable name. */
  consumerPositions(): Record<string, string> {
    return Object.fromEntries([...this.positions].map(([name, pos]) => [name, pos.toString()]));
  }

  private subscribeHealth(): void {
    const { service, nc } = this.options;
    const sub = nc.subscribe(healthSubject(service), {
      callback: (_err, msg) => void this.answerHealth(msg),
    });
    this.subscriptions.push(sub);
  }

  private async answerHealth(msg: Msg): Promise<void> {
    const { service } = this.options;
    type Extra = Awaited<ReturnType<NonNullable<MeshTransportOptions['healthDetails']>>>;
    const extra: Extra = (await this.options.healthDetails?.().catch((err): Extra => ({ status: 'degraded', details: { error: messageOf(err) } }))) ?? {};
    const reply: HealthReply = {
      service,
      status: extra.status ?? 'ok',
      version: this.options.version ?? '0.1.0',
      pid: process.pid,
      uptimeMs: Date.now() - this.startedAt,
      positions: { ...this.consumerPositions(), ...(extra.positions ?? {}) },
      ...(extra.details ? { details: extra.details } : {}),
    };
    msg.respond(encodeJson({ ok: true, data: reply }));
  }

  private subscribeRequests(subject: string, handler: MessageHandler): void {
    const definition = requestRegistry.get(subject);
    const sub = this.options.nc.subscribe(subject, {
      queue: `mesh-${this.options.service}`,
      callback: (_err, msg) => void this.answer(msg, handler, definition?.schema, subject),
    });
    this.subscriptions.push(sub);
  }

  private async answer(msg: Msg, handler: MessageHandler, schema: Parameters<typeof parseOrThrow>[0] | undefined, subject: string): Promise<void> {
    try {
      const body = decodeJson(msg.data);
      const data = schema ? parseOrThrow(schema, body, subject) : body;
      const context = { traceparent: msg.headers?.get('traceparent') || undefined };
      const attributes = () => ({ 'messaging.system': 'nats', 'messaging.destination.name': subject, 'mesh.service': this.options.service });
      const result = await inHandlerSpan(subject, 'server', context.traceparent, attributes, () =>
        runInMessageContext(context, async () => {
          const output: unknown = await handler(data, new NatsRequestContext([msg]));
          return lastValueFrom(this.transformToObservable<unknown>(output), { defaultValue: undefined });
        }),
      );
      msg.respond(encodeJson({ ok: true, data: result ?? null }));
    } catch (err) {
      const error = toErrorBody(err);
      if (error.code === 'internal') this.log.error(`${subject}: ${stackOf(err)}`);
      msg.respond(encodeJson({ ok: false, error }));
    }
  }

  private async startConsumer(pattern: string, handler: MessageHandler): Promise<void> {
    const extras = handler.extras as unknown as EventConsumerExtras;
    const { nc } = this.options;
    const durable = [this.options.consumerPrefix ?? this.options.service, extras.category, extras.name].filter(Boolean).join('_');
    const maxDeliveries = extras.maxDeliveries ?? this.options.maxDeliveries;
    const jsm = await nc.jetstreamManager();
    const config = {
      durable_name: durable,
      filter_subject: pattern.split('#')[0],
      ack_policy: AckPolicy.Explicit,
      deliver_policy: extras.deliver === 'new' ? DeliverPolicy.New : DeliverPolicy.All,
      // One more than ours: the server stops redelivering only if we crash before dead-lettering.
      max_deliver: maxDeliveries + 1,
      ack_wait: nanos(30_000),
      max_ack_pending: extras.maxAckPending ?? 256,
    };
    try {
      await jsm.consumers.add(EVENTS_STREAM, config);
    } catch (err) {
      if (!/already exists|already in use/i.test(messageOf(err))) throw err;
      const { deliver_policy: _deliver, filter_subject: _filter, ...mutable } = config;
      await jsm.consumers.update(EVENTS_STREAM, durable, mutable);
    }
    const consumer = await nc.jetstream().consumers.get(EVENTS_STREAM, durable);
    const messages = await consumer.consume({ max_messages: Math.min(config.max_ack_pending, 256) });
    this.consumers.push(messages);
    const concurrency = Math.max(1, Math.min(extras.concurrency ?? 1, config.max_ack_pending));
    this.loops.push(
      (async () => {
        const inFlight = new Set<Promise<void>>();
        for await (const m of messages) {
          const delivery = this.deliver(durable, m, handler, maxDeliveries).finally(() => inFlight.delete(delivery));
          inFlight.add(delivery);
          if (inFlight.size >= concurrency) await Promise.race(inFlight);
          if (this.closing) break;
        }
        await Promise.allSettled(inFlight);
      })().catch((err) => this.log.error(`consumer ${durable} stopped: ${messageOf(err)}`)),
    );
  }

  private async deliver(durable: string, m: JsMsg, handler: MessageHandler, maxDeliveries: number): Promise<void> {
    const deliveries = m.info.redeliveryCount;
    let event: RecordedEvent;
    try {
      event = decode(m);
      const { category } = parseStreamName(event.stream);
      event = { ...event, data: catalog.validate(event.type, category, event.data) };
    } catch (err) {
      // An event that doesn't match its contract will never become valid: dead-letter at once.
      await this.deadLetter(durable, m, deliveries, `invalid event: ${messageOf(err)}`);
      return;
    }
    try {
      const context = { traceparent: event.traceparent, correlationId: event.correlationId, causationId: event.id };
      const attributes = () => ({
        'messaging.system': 'nats',
        'messaging.destination.name': m.subject,
        'messaging.consumer.group.name': durable,
        'messaging.message.id': event.id,
        'mesh.event.type': event.type,
        'mesh.event.stream': event.stream,
        'mesh.event.position': event.position.toString(),
        'mesh.delivery': deliveries,
      });
      await inHandlerSpan(`process ${event.type}`, 'consumer', event.traceparent, attributes, () =>
        runInMessageContext(context, async () => {
          const output: unknown = await handler(event, new JetStreamContext([m, deliveries]));
          return lastValueFrom(this.transformToObservable<unknown>(output), { defaultValue: undefined });
        }),
      );
      m.ack();
      // With concurrency > 1 deliveries finish out of order: report the highest position handled.
      if (event.position > (this.positions.get(durable) ?? 0n)) this.positions.set(durable, event.position);
    } catch (err) {
      if (deliveries >= maxDeliveries) {
        await this.deadLetter(durable, m, deliveries, stackOf(err));
      } else {
        this.log.warn(`${durable}: ${event.type} ${event.id} failed (delivery ${deliveries}/${maxDeliveries}): ${messageOf(err)}`);
        m.nak(redeliveryDelayMs(deliveries));
      }
    }
  }

  private async deadLetter(durable: string, m: JsMsg, deliveries: number, error: string): Promise<void> {
    const { service, store } = this.options;
    this.log.error(`${durable}: dead-lettering stream seq ${m.seq} after ${deliveries} deliveries: ${error.split('\n')[0]}`);
    try {
      await store.append(
        `deadletter-${service}`,
        [
          {
            id: `${durable}-${m.seq}`,
            type: 'MessageDeadLettered',
            data: {
              service,
              consumer: durable,
              subject: m.subject,
              eventId: m.headers?.get('Nats-Msg-Id') || undefined,
              eventType: m.headers?.get('Mesh-Type') || undefined,
              streamSequence: String(m.seq),
              deliveries,
              error: error.slice(0, 4096),
            },
          },
        ],
        'any',
      );
      m.term();
    } catch (err) {
      // Could not record it: leave it to be redelivered rather than lose it.
      this.log.error(`${durable}: dead-letter write failed: ${messageOf(err)}`);
      m.nak(redeliveryDelayMs(deliveries));
    }
  }
}

/** An error's stack (its message when it has none), for logs and dead letters. */
function stackOf(err: unknown): string {
  return (err instanceof Error ? err.stack : undefined) ?? messageOf(err);
}

/** Headers for an outgoing request or publish: a child traceparent of the current context. */
export function outgoingHeaders() {
  const h = natsHeaders();
  h.set('traceparent', outgoingTraceparent());
  return h;
}
