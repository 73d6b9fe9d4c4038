import { Logger } from '@nestjs/common';
import { BaseRpcContext, Server, type CustomTransportStrategy, type MessageHandler } from '@nestjs/microservices';
import { lastValueFrom } from 'rxjs';
import {
  ConsumerEvents,
  headers as natsHeaders,
  type ConsumerMessages,
  type JsMsg,
  type Msg,
  type NatsConnection,
  type Subscription as NatsSubscription,
} from 'nats';
import {
  DomainError,
  EVENTS_STREAM,
  assertConsumes,
  MessageDeadLettered,
  MessageReplayed,
  deadLetterReplayRequest,
  deadLetterReplaySubject,
  eventOf,
  healthSubject,
  parseOrThrow,
  PLAIN_SUBJECTS,
  streamForSubject,
  type DeadLetterReplayReply,
  type EventSubjects,
  type EventData,
  type HealthReply,
  callerOfSubject,
  describeCaller,
  tenantInboxPrefix,
  tenantWildcardSubject,
  type Caller,
  type RecordedEvent,
  type ServiceName,
} from '@mesh/contracts';
import { LRUCache, messageOf } from '@mesh/common';
import { ConcurrencyError } from '@mesh/eventstore/errors';
import { decode } from '@mesh/eventstore/jetstream/jetstream-event-store';
import { consumersOfHandler, type DurableConsumer } from './consumers';
import type { EventStore } from '@mesh/eventstore/port';
import { requestRegistry, type EventConsumerExtras } from './decorators';
import { decodeJson, encodeJson } from './json';
import { toErrorBody } from './replies';
import { inHandlerSpan, outgoingTraceparent, runInMessageContext } from './trace';
import { deadLetterId, deadLetterStream, foldDeadLetters, replayEventId, type DeadLetter } from './deadletters';
import { rewindUnacked, type Leadership } from './lease';

/** Backoff between redeliveries of a failing event: 200 ms doubling to at most `maxMs`. */
export function redeliveryDelayMs(deliveries: number, maxMs = 30_000): number {
  return Math.min(200 * 2 ** Math.min(30, Math.max(0, deliveries - 1)), maxMs);
}

/**
 * What to do with a delivery that failed: redeliver after `delayMs`, or park it (retry window over,
 * or the delivery bound reached). The last wait is cut to the window's end, so the final delivery
 * happens right when the window closes. Pure.
 */
export function failureVerdict(
  deliveries: number,
  elapsedMs: number,
  limits: { maxDeliveries: number; retryWindowMs: number; backoffMaxMs: number },
): { park: true } | { park: false; delayMs: number } {
  const remainingMs = limits.retryWindowMs - elapsedMs;
  if (deliveries >= limits.maxDeliveries || remainingMs <= 0) return { park: true };
  return { park: false, delayMs: Math.max(1, Math.min(redeliveryDelayMs(deliveries, limits.backoffMaxMs), remainingMs)) };
}

/** First failures remembered per (consumer, sequence): more than messages in flight, fewer than memory. */
const FAILURES_REMEMBERED = 100_000;
/** A durable consumer's server sends a heartbeat this often while it has nothing to deliver (two missed: pull again). */
const CONSUMER_HEARTBEAT_MS = 2_000;
/** Appends of one replay record retried on a concurrent write to the deadletter stream. */
const REPLAY_RECORD_ATTEMPTS = 5;

/**
 * What a handler receives as its Nest context: the raw JetStream message (none when an operator
 * replays a dead letter: the event was read by sequence) and the delivery count.
 */
export class JetStreamContext extends BaseRpcContext<[JsMsg | undefined, number]> {
  get message(): JsMsg | undefined {
    return this.args[0];
  }
  get deliveries(): number {
    return this.args[1];
  }
}

/**
 * What a request handler receives as its Nest context: the NATS message and the caller, known from
 * the subject the message was published on (`@Ctx() ctx: NatsRequestContext`, then `ctx.caller`).
 */
export class NatsRequestContext extends BaseRpcContext<[Msg, Caller]> {
  get message(): Msg {
    return this.args[0];
  }
  /** The operator (or a service) on `mesh.api.*`/`mesh.query.*`; a tenant on `mesh.tenant.<tenantId>.*`. */
  get caller(): Caller {
    return this.args[1];
  }
}

export interface MeshTransportOptions {
  service: ServiceName;
  nc: NatsConnection;
  store: EventStore;
  /** Hard bound on the deliveries of a failing event (CONSUMER_MAX_DELIVERIES). */
  maxDeliveries: number;
  /** How long after its first failure an event is redelivered before it is parked (CONSUMER_RETRY_WINDOW_MS). */
  retryWindowMs: number;
  /** Longest wait between two deliveries (CONSUMER_RETRY_BACKOFF_MAX_MS). */
  retryBackoffMaxMs: number;
  /**
   * Prefix of durable consumer names (default: the service name). Services that run one instance
   * per node (container-manager) use a per-node prefix so each instance sees every event; replicas
   * of the other services share the prefix and so share (load-balance) their consumers.
   */
  consumerPrefix?: string;
  version?: string;
  /**
   * Replicated services: the durable consumers run only while this replica leads (started when it
   * becomes the leader, stopped when it stops being it). Without it they run from the start.
   */
  leadership?: Leadership;
  /** The log's layout (default: plain, one consumer per handler). */
  subjects?: EventSubjects;
  /**
   * A partitioned log: the lease of each partition (index = partition). The consumers of
   * `partitioned` handlers for partition p run while `partitionLeases[p]` leads (always, without them).
   */
  partitionLeases?: readonly Leadership[];
  /** Extra health details (e.g. projection positions), merged into the health reply. */
  healthDetails?: () => Promise<Partial<Pick<HealthReply, 'positions' | 'details' | 'status'>>>;
}

/** One durable consumer running: its messages and the loop handling them. */
interface RunningConsumer {
  messages: ConsumerMessages;
  loop: Promise<void>;
}

/** Consumers started and stopped together, by `gate` (a lease) or from the start (no gate). */
interface ConsumerGroup {
  gate?: Leadership;
  members: { consumer: DurableConsumer; handler: MessageHandler; extras: EventConsumerExtras }[];
  running: RunningConsumer[];
}

/**
 * NestJS custom transport for mesh: `@OnRequest`/`@MessagePattern` handlers answer core NATS
 * requests (queue group per service, plain JSON so any NATS client can call them) and
 * `@OnEvents`/`@EventPattern` handlers are durable JetStream consumers with explicit ack/nak.
 */
export class MeshTransport extends Server implements CustomTransportStrategy {
  private readonly log: Logger;
  private readonly subscriptions: NatsSubscription[] = [];
  /**
   * The durable consumers by what starts and stops them: `always`, `leader` (the service's lease),
   * `p<i>` (partition i's lease); each with the ones running now.
   */
  private readonly groups = new Map<string, ConsumerGroup>();
  private readonly positions = new Map<string, bigint>();
  /** Handler and in-flight deliveries of each durable consumer (replays run the same handler). */
  private readonly handlers = new Map<string, { handler: MessageHandler; inFlight: Set<Promise<void>> }>();
  /** A replay in progress per consumer: new deliveries of that consumer wait for it (one at a time stays true). */
  private readonly replayGates = new Map<string, Promise<unknown>>();
  /**
   * When each failing message first failed, by `<durable>:<seq>`. In memory: after a restart (or an
   * eviction) the window starts again, which only retries longer; CONSUMER_MAX_DELIVERIES still bounds it.
   */
  private readonly firstFailures = new LRUCache<string, number>({ max: FAILURES_REMEMBERED });
  private readonly startedAt = Date.now();
  private closing = false;

  constructor(private readonly options: MeshTransportOptions) {
    super();
    this.log = new Logger(`MeshTransport(${options.service})`);
  }

  async listen(callback: (...optionalParams: unknown[]) => unknown): Promise<void> {
    try {
      const { leadership, partitionLeases, service } = this.options;
      const subjects = this.options.subjects ?? PLAIN_SUBJECTS;
      const group = (name: string, gate: Leadership | undefined) => {
        let found = this.groups.get(name);
        if (!found) this.groups.set(name, (found = { gate, members: [], running: [] }));
        return found;
      };
      for (const [pattern, handler] of this.messageHandlers) {
        if (!handler.isEventHandler) {
          this.subscribeRequests(pattern, handler);
          continue;
        }
        const extras = handler.extras as unknown as EventConsumerExtras;
        // The NATS permissions are generated from the same table: a consumer not listed there fails here, at start.
        assertConsumes(service, extras.category);
        for (const { consumer, runner } of consumersOfHandler(
          this.options.consumerPrefix ?? service,
          leadership?.instance,
          extras,
          this.options.maxDeliveries,
          subjects,
        )) {
          const member = { consumer, handler, extras };
          if (runner.by === 'partition') group(`p${runner.partition}`, partitionLeases?.[runner.partition]).members.push(member);
          else if (runner.by === 'every-replica') group('always', undefined).members.push(member);
          else group('leader', leadership).members.push(member);
        }
      }
      for (const [name, found] of this.groups) {
        if (found.gate) found.gate.onChange((active) => this.follow(name, active));
        else await this.startGroup(name);
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
    await Promise.allSettled([...this.groups.keys()].map((name) => this.stopGroup(name)));
  }

  /** Starts a group's durable consumers when its lease leads, stops them (in-flight deliveries finish) when it stops leading. */
  private async follow(name: string, active: boolean): Promise<void> {
    if (this.closing) return;
    if (!active) await this.stopGroup(name);
    else await this.startGroup(name);
  }

  private async startGroup(name: string): Promise<void> {
    const group = this.groups.get(name)!;
    for (const { consumer, handler, extras } of group.members) {
      try {
        group.running.push(await this.startConsumer(consumer, handler, extras, group.gate !== undefined));
      } catch (err) {
        if (!group.gate) throw err;
        // No leading without consumers: another replica takes over (or this one again, a lease later).
        await this.stopGroup(name);
        await group.gate.resign(`consumer ${consumer.config.durable_name} did not start: ${messageOf(err)}`);
        return;
      }
    }
  }

  private async stopGroup(name: string): Promise<void> {
    const running = this.groups.get(name)?.running.splice(0) ?? [];
    // nats.js resolves close() only while the messages are still being iterated; a loop that already
    // left on `closing` would leave it pending forever, so whichever ends first is enough.
    await Promise.allSettled(running.map(({ messages, loop }) => Promise.race([messages.close().catch(() => undefined), loop])));
    await Promise.allSettled(running.map(({ loop }) => loop));
  }

  on(): void {
    // Status events are the NATS connection's own (nc.status()); nothing to register here.
  }

  unwrap<T>(): T {
    return this.options.nc as T;
  }

  /** Whether any handler is partitioned in this layout (its consumers follow the partition leases). */
  get partitioned(): boolean {
    return [...this.groups.keys()].some((name) => /^p\d+$/.test(name));
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
    const { leadership } = this.options;
    if (leadership) reply.details = { ...reply.details, instance: leadership.instance, leader: leadership.isLeader };
    // The partitions whose consumers run here now (a lease taken back acts a lease later).
    if (this.partitioned) {
      const leases = this.options.partitionLeases ?? [];
      reply.details = { ...reply.details, partitions: leases.flatMap((lease, p) => (lease.isLeader ? [p] : [])) };
    }
    msg.respond(encodeJson({ ok: true, data: reply }));
  }

  /**
   * Every request subject is answered on its operator subject; a definition with `access: 'tenant'`
   * also on `mesh.tenant.*.<...>`, where the caller is the tenant named by the subject (NATS lets a
   * tenant publish only under its own id, docs/security.md).
   */
  private subscribeRequests(subject: string, handler: MessageHandler): void {
    const definition = requestRegistry.get(subject);
    const subjects = definition?.access === 'tenant' ? [subject, tenantWildcardSubject(subject)] : [subject];
    for (const listenOn of subjects) {
      const sub = this.options.nc.subscribe(listenOn, {
        queue: `mesh-${this.options.service}`,
        callback: (_err, msg) => void this.answer(msg, handler, definition?.schema, subject),
      });
      this.subscriptions.push(sub);
    }
  }

  private async answer(msg: Msg, handler: MessageHandler, schema: Parameters<typeof parseOrThrow>[0] | undefined, subject: string): Promise<void> {
    const caller = callerOfSubject(msg.subject);
    if (!replyAllowed(caller, msg.reply)) {
      // Not run, not answered: the reply subject is the tenant's choice, and a service's answer goes
      // out under the service's identity, past the tenant's NATS permissions: answering on
      // `mesh.events.>` (a service writes its own categories) or the JetStream API would write to or
      // purge the log, and on another identity's inbox (services publish on `_INBOX.>`) would hand it
      // the answer.
      this.log.warn(`${subject}: refused a request of ${describeCaller(caller)} whose reply subject ${msg.reply} is not its inbox`);
      return;
    }
    try {
      const body = decodeJson(msg.data);
      const data = schema ? parseOrThrow(schema, body, subject) : body;
      const context = { traceparent: msg.headers?.get('traceparent') || undefined };
      const attributes = () => ({ 'messaging.system': 'nats', 'messaging.destination.name': subject, 'mesh.service': this.options.service });
      const result = await inHandlerSpan(subject, 'server', context.traceparent, attributes, () =>
        runInMessageContext(context, async () => {
          const output: unknown = await handler(data, new NatsRequestContext([msg, caller]));
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

  private async startConsumer(consumer: DurableConsumer, handler: MessageHandler, extras: EventConsumerExtras, leased: boolean): Promise<RunningConsumer> {
    const { nc } = this.options;
    const { config, maxDeliveries } = consumer;
    const durable = config.durable_name;
    const jsm = await nc.jetstreamManager();
    // A new leader first takes back what the previous one had in flight (lease.ts rewindUnacked).
    const rewound = leased ? await rewindUnacked(jsm, EVENTS_STREAM, durable, config) : false;
    if (rewound) this.log.log(`${durable}: unacknowledged deliveries of the previous leader delivered again from the ack floor`);
    try {
      if (!rewound) await jsm.consumers.add(EVENTS_STREAM, config);
    } catch (err) {
      // It exists: it keeps its position, whatever deliver policy created it (2.9 refuses to "update"
      // that one; e.g. the restart bench creates it at the log's head, as a restarted service finds
      // it, and a rewound consumer starts at a sequence).
      if (!/already exists|already in use|can not be updated/i.test(messageOf(err))) throw err;
      const { deliver_policy: _deliver, filter_subject: _filter, ...mutable } = config;
      await jsm.consumers.update(EVENTS_STREAM, durable, mutable);
    }
    const pulled = await nc.jetstream().consumers.get(EVENTS_STREAM, durable);
    // Heartbeats every 2 s (not nats.js's 15 s): a pull lost with its consumer's leader (a NATS
    // server died) is noticed after two missed ones and sent again once the new leader answers.
    const messages = await pulled.consume({ max_messages: Math.min(config.max_ack_pending, 256), idle_heartbeat: CONSUMER_HEARTBEAT_MS });
    void this.logConsumerStatus(durable, messages);
    const concurrency = Math.max(1, Math.min(extras.concurrency ?? 1, config.max_ack_pending));
    const inFlight = new Set<Promise<void>>();
    // A leader that regains leadership keeps its replay subscription (one per durable).
    if (!this.handlers.has(durable)) this.subscribeReplays(durable);
    this.handlers.set(durable, { handler, inFlight });
    return {
      messages,
      loop: (async () => {
        for await (const m of messages) {
          // An operator's replay of this consumer's dead letter runs alone (see replay()).
          for (let gate = this.replayGates.get(durable); gate; gate = this.replayGates.get(durable)) await gate.catch(() => undefined);
          const delivery = this.deliver(durable, m, handler, maxDeliveries).finally(() => inFlight.delete(delivery));
          inFlight.add(delivery);
          if (inFlight.size >= concurrency) await Promise.race(inFlight);
          if (this.closing) break;
        }
        await Promise.allSettled(inFlight);
      })().catch((err) => this.log.error(`consumer ${durable} stopped: ${messageOf(err)}`)),
    };
  }

  /** What nats.js reports of a durable consumer (missed heartbeats, consumer gone): it re-pulls by itself; the log says why a consumer paused. */
  private async logConsumerStatus(durable: string, messages: ConsumerMessages): Promise<void> {
    for await (const status of await messages.status()) {
      if (status.type === ConsumerEvents.HeartbeatsMissed && status.data === 2) this.log.warn(`consumer ${durable}: heartbeats missed, pulling again`);
      if (status.type === ConsumerEvents.ConsumerDeleted || status.type === ConsumerEvents.ConsumerNotFound || status.type === ConsumerEvents.StreamNotFound)
        this.log.warn(`consumer ${durable}: ${status.type} (${String(status.data)})`);
    }
  }

  private async deliver(durable: string, m: JsMsg, handler: MessageHandler, maxDeliveries: number): Promise<void> {
    const deliveries = m.info.redeliveryCount;
    const failureKey = `${durable}:${m.seq}`;
    let event: RecordedEvent;
    try {
      // decode checks the envelope, the type's category and the data against its schema (poison).
      event = decode(m);
    } catch (err) {
      // An event that doesn't match its contract will never become valid: park it at once.
      const now = new Date().toISOString();
      await this.park(durable, m, deliveries, `invalid event: ${messageOf(err)}`, { cause: 'contract', firstFailedAt: now, lastFailedAt: now });
      return;
    }
    try {
      await this.runHandler(durable, m.subject, event, handler, m, deliveries);
      m.ack();
      if (deliveries > 1) this.firstFailures.delete(failureKey);
      // With concurrency > 1 deliveries finish out of order: report the highest position handled.
      if (event.position > (this.positions.get(durable) ?? 0n)) this.positions.set(durable, event.position);
    } catch (err) {
      const nowMs = Date.now();
      const firstMs = this.firstFailures.get(failureKey) ?? nowMs;
      const { retryWindowMs, retryBackoffMaxMs } = this.options;
      const verdict = failureVerdict(deliveries, nowMs - firstMs, { maxDeliveries, retryWindowMs, backoffMaxMs: retryBackoffMaxMs });
      if (verdict.park) {
        this.firstFailures.delete(failureKey);
        await this.park(durable, m, deliveries, stackOf(err), {
          cause: 'exhausted',
          stream: event.stream,
          firstFailedAt: new Date(firstMs).toISOString(),
          lastFailedAt: new Date(nowMs).toISOString(),
        });
      } else {
        this.firstFailures.set(failureKey, firstMs);
        const left = Math.max(0, retryWindowMs - (nowMs - firstMs));
        this.log.warn(
          `${durable}: ${event.type} ${event.id} failed (delivery ${deliveries}/${maxDeliveries}, retried for ${left} ms more, next in ${verdict.delayMs} ms): ${messageOf(err)}`,
        );
        m.nak(verdict.delayMs);
      }
    }
  }

  /** Runs a consumer's handler on one validated event, in the event's trace and correlation context. */
  private async runHandler(durable: string, subject: string, event: RecordedEvent, handler: MessageHandler, m: JsMsg | undefined, deliveries: number) {
    const context = { traceparent: event.traceparent, correlationId: event.correlationId, causationId: event.id };
    const attributes = () => ({
      'messaging.system': 'nats',
      'messaging.destination.name': subject,
      'messaging.consumer.group.name': durable,
      'messaging.message.id': event.id,
      'mesh.event.type': event.type,
      'mesh.event.stream': event.stream,
      'mesh.event.position': event.position.toString(),
      'mesh.delivery': deliveries,
      'mesh.replay': m === undefined,
    });
    await inHandlerSpan(`process ${event.type}`, 'consumer', event.traceparent, attributes, () =>
      runInMessageContext(context, async () => {
        const output: unknown = await handler(event, new JetStreamContext([m, deliveries]));
        return lastValueFrom(this.transformToObservable<unknown>(output), { defaultValue: undefined });
      }),
    );
  }

  /**
   * Parks a message: records everything needed to replay it (consumer, stream sequence, subject,
   * event id, error, deliveries, first/last failure) as MessageDeadLettered in `deadletter-<service>`,
   * then terminates it so the consumer moves on.
   */
  private async park(
    durable: string,
    m: JsMsg,
    deliveries: number,
    error: string,
    extra: Pick<EventData<typeof MessageDeadLettered>, 'cause' | 'stream' | 'firstFailedAt' | 'lastFailedAt'>,
  ): Promise<void> {
    const { service, store } = this.options;
    this.log.error(`${durable}: parking stream seq ${m.seq} after ${deliveries} deliveries (${extra.cause}): ${error.split('\n')[0]}`);
    try {
      const eventStream = extra.stream ?? streamOfSubject(m.subject);
      const letter = eventOf(MessageDeadLettered, deadLetterId(durable, m.seq), {
        service,
        consumer: durable,
        subject: m.subject.slice(0, 512),
        eventId: m.headers?.get('Nats-Msg-Id')?.slice(0, 128) || undefined,
        eventType: m.headers?.get('Mesh-Type')?.slice(0, 64) || undefined,
        streamSequence: String(m.seq),
        deliveries,
        error: error.slice(0, 4096),
        cause: extra.cause,
        ...(extra.firstFailedAt ? { firstFailedAt: extra.firstFailedAt, lastFailedAt: extra.lastFailedAt } : {}),
        ...(eventStream ? { stream: eventStream.slice(0, 256) } : {}),
      });
      await store.append(deadLetterStream(service), [letter], 'any');
      m.term();
    } catch (err) {
      // Could not record it: leave it to be redelivered rather than lose it.
      this.log.error(`${durable}: dead-letter write failed: ${messageOf(err)}`);
      m.nak(redeliveryDelayMs(deliveries, this.options.retryBackoffMaxMs));
    }
  }

  // --- replay of dead letters ---------------------------------------------------------------------
  private subscribeReplays(durable: string): void {
    const { service, nc } = this.options;
    const subject = deadLetterReplaySubject(service, durable);
    const definition = deadLetterReplayRequest(service);
    const sub = nc.subscribe(subject, {
      // Replicas sharing this durable share the queue group; a per-node durable is replayed by its node.
      queue: `mesh-${service}`,
      callback: (_err, msg) => void this.answerReplay(msg, durable, definition.schema, subject),
    });
    this.subscriptions.push(sub);
  }

  private async answerReplay(msg: Msg, durable: string, schema: ReturnType<typeof deadLetterReplayRequest>['schema'], subject: string): Promise<void> {
    try {
      const body = parseOrThrow(schema, decodeJson(msg.data), subject);
      const reply = await this.replay(durable, body.id);
      msg.respond(encodeJson({ ok: true, data: reply }));
    } catch (err) {
      const error = toErrorBody(err);
      if (error.code === 'internal') this.log.error(`${subject}: ${stackOf(err)}`);
      msg.respond(encodeJson({ ok: false, error }));
    }
  }

  /**
   * Re-delivers one parked message to its consumer's handler: loads the letter from
   * `deadletter-<service>`, reads the original event by sequence from MESH_EVENTS, runs the same
   * handler (alone: the consumer's deliveries wait) and records the outcome as MessageReplayed, so a
   * resolved letter is no longer listed and a second replay is a no-op. Handlers are idempotent
   * (deterministic event ids), so replaying something already applied is harmless.
   */
  async replay(durable: string, id: string): Promise<DeadLetterReplayReply> {
    const consumer = this.handlers.get(durable);
    if (!consumer) throw new DomainError('unknown_consumer', `consumer: ${durable} is not a consumer of this ${this.options.service} instance`);
    const stream = deadLetterStream(this.options.service);
    const letter = foldDeadLetters(await this.options.store.read(stream)).letters.get(id);
    if (!letter) throw new DomainError('unknown_dead_letter', `id: no dead letter ${id} in ${stream}`);
    if (letter.consumer !== durable) throw new DomainError('wrong_consumer', `id: dead letter ${id} belongs to consumer ${letter.consumer}, not ${durable}`);
    if (letter.status === 'resolved') return { id, outcome: 'already-resolved' };
    const original = await this.readOriginal(letter);
    const previous = this.replayGates.get(durable);
    const run = (async () => {
      await previous?.catch(() => undefined);
      await Promise.allSettled([...consumer.inFlight]);
      try {
        await this.runHandler(durable, letter.subject, original, consumer.handler, undefined, letter.deliveries + 1);
        return undefined;
      } catch (err) {
        return stackOf(err);
      }
    })();
    this.replayGates.set(durable, run);
    const error = await run.finally(() => this.replayGates.get(durable) === run && this.replayGates.delete(durable));
    return this.recordReplay(letter, error);
  }

  /** The original message of a letter, by sequence from MESH_EVENTS (with its traceparent). */
  private async readOriginal(letter: DeadLetter): Promise<RecordedEvent> {
    const jsm = await this.options.nc.jetstreamManager();
    try {
      const stored = await jsm.streams.getMessage(EVENTS_STREAM, { seq: Number(letter.streamSequence) });
      return decode({ data: stored.data, seq: stored.seq, headers: stored.header, subject: stored.subject });
    } catch (err) {
      throw new DomainError(
        'original_missing',
        `streamSequence: message ${letter.streamSequence} of dead letter ${letter.id} cannot be read from ${EVENTS_STREAM}: ${messageOf(err)}`,
      );
    }
  }

  /** Appends the replay's outcome with the stream's expected version; a concurrent write re-reads (bounded). */
  private async recordReplay(letter: DeadLetter, error: string | undefined): Promise<DeadLetterReplayReply> {
    const { service, store } = this.options;
    const stream = deadLetterStream(service);
    for (let attempt = 1; ; attempt++) {
      const { letters, revision } = foldDeadLetters(await store.read(stream));
      const current = letters.get(letter.id);
      // Another replay (another replica) resolved it meanwhile: ours changed nothing more.
      if (!current || current.status === 'resolved') return { id: letter.id, outcome: 'already-resolved' };
      const record = eventOf(MessageReplayed, replayEventId(letter.id, current.replays + 1), {
        deadLetterId: letter.id,
        service,
        consumer: letter.consumer,
        streamSequence: letter.streamSequence,
        ...(letter.eventId ? { eventId: letter.eventId } : {}),
        outcome: error === undefined ? 'applied' : 'failed',
        ...(error !== undefined ? { error: error.slice(0, 4096) } : {}),
        replayedAt: new Date().toISOString(),
      });
      try {
        await store.append(stream, [record], revision);
        if (error !== undefined) this.log.warn(`${letter.consumer}: replay of ${letter.id} failed again: ${error.split('\n')[0]}`);
        else this.log.log(`${letter.consumer}: replayed ${letter.id} (stream seq ${letter.streamSequence})`);
        return { id: letter.id, outcome: record.data.outcome, ...(error !== undefined ? { error: error.slice(0, 4096) } : {}) };
      } catch (err) {
        if (!(err instanceof ConcurrencyError) || attempt >= REPLAY_RECORD_ATTEMPTS) throw err;
      }
    }
  }
}

/** `mesh.events.usage.c1` -> `usage-c1`, or undefined for a subject that is not an event subject. */
function streamOfSubject(subject: string): string | undefined {
  try {
    return streamForSubject(subject);
  } catch {
    return undefined;
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

/**
 * Whether a request of `caller` may be answered on `reply`: a tenant's only on its own inbox
 * (`_INBOX.t.<tenantId>.`, where its connection receives replies), or not at all when it asked for no
 * reply. The operator's and the services' subjects are published by trusted identities only.
 */
export function replyAllowed(caller: Caller, reply: string | undefined): boolean {
  if (caller.kind === 'operator' || !reply) return true;
  return reply.startsWith(`${tenantInboxPrefix(caller.tenantId)}.`);
}
