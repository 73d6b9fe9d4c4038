import { MODULE_METADATA } from '@nestjs/common/constants';
import type { DynamicModule, Type } from '@nestjs/common';
import { PATTERN_EXTRAS_METADATA, PATTERN_HANDLER_METADATA, PATTERN_METADATA } from '@nestjs/microservices/constants';
import { PatternHandler } from '@nestjs/microservices/enums/pattern-handler.enum';
import { AckPolicy, DeliverPolicy, nanos, type ConsumerConfig } from 'nats';
import type { commonEnv, ConfigOf, EnvSpec } from '@mesh/config';
import type { ServiceDefinition } from './bootstrap';
import type { MeshCore } from './core.module';
import type { EventConsumerExtras } from './decorators';

/** Ack wait of every durable consumer: a handler still running after it gets the event again. */
const ACK_WAIT_MS = 30_000;
/** Events handed out before the first ack, unless the handler says otherwise (@OnEvents maxAckPending). */
const MAX_ACK_PENDING_DEFAULT = 256;

/** A durable consumer as the transport creates it for one @OnEvents handler. */
export interface DurableConsumer {
  config: Partial<ConsumerConfig> & { durable_name: string; filter_subject: string; max_ack_pending: number };
  /** Our own bound on deliveries (the server's max_deliver is one more: it stops only if we crash before parking). */
  maxDeliveries: number;
}

/**
 * The JetStream config of the durable consumer behind an @OnEvents handler: `prefix` is the
 * service's consumer prefix (its name, or per node), `pattern` the handler's (`<subject>[#name]`).
 * One definition, used by the transport at start and by whoever must create the same consumer
 * beforehand (the restart bench creates it at the log's head, as a restarted service finds it).
 */
export function durableConsumerConfig(prefix: string, pattern: string, extras: EventConsumerExtras, maxDeliveriesDefault: number): DurableConsumer {
  const maxDeliveries = extras.maxDeliveries ?? maxDeliveriesDefault;
  return {
    maxDeliveries,
    config: {
      durable_name: [prefix, extras.category, extras.name].filter(Boolean).join('_'),
      filter_subject: pattern.split('#')[0],
      ack_policy: AckPolicy.Explicit,
      deliver_policy: extras.deliver === 'new' ? DeliverPolicy.New : DeliverPolicy.All,
      // One more than ours: the server stops redelivering only if we crash before parking it.
      max_deliver: maxDeliveries + 1,
      ack_wait: nanos(ACK_WAIT_MS),
      max_ack_pending: extras.maxAckPending ?? MAX_ACK_PENDING_DEFAULT,
    },
  };
}

/** Controllers of a module and of every module it imports (static @Module metadata or a DynamicModule). */
function controllersOf(module: Type | DynamicModule, seen = new Set<unknown>()): Type[] {
  const type = 'module' in module ? module.module : module;
  if (seen.has(module)) return [];
  seen.add(module);
  const dynamic = 'module' in module ? module : undefined;
  const controllers: Type[] = [...((Reflect.getMetadata(MODULE_METADATA.CONTROLLERS, type) as Type[] | undefined) ?? []), ...(dynamic?.controllers ?? [])];
  const imports = [...((Reflect.getMetadata(MODULE_METADATA.IMPORTS, type) as unknown[] | undefined) ?? []), ...(dynamic?.imports ?? [])];
  for (const imported of imports) {
    if (typeof imported === 'function' || (typeof imported === 'object' && imported !== null && 'module' in imported))
      controllers.push(...controllersOf(imported as Type | DynamicModule, seen));
  }
  return controllers;
}

/**
 * Every durable consumer `definition` creates at start: its @OnEvents handlers, found in the
 * controllers of its module (as Nest registers them), with its consumer prefix and delivery bound.
 */
export function durableConsumersOf<S extends EnvSpec>(definition: ServiceDefinition<S>, core: MeshCore<ConfigOf<S & typeof commonEnv>>): DurableConsumer[] {
  const prefix = definition.consumerPrefix?.(core.config) ?? definition.service;
  const maxDeliveries = (core.config as { CONSUMER_MAX_DELIVERIES: number }).CONSUMER_MAX_DELIVERIES;
  const consumers: DurableConsumer[] = [];
  for (const controller of controllersOf(definition.module(core))) {
    const proto = controller.prototype as Record<string, unknown>;
    for (const name of Object.getOwnPropertyNames(proto)) {
      const method = proto[name];
      if (typeof method !== 'function' || Reflect.getMetadata(PATTERN_HANDLER_METADATA, method) !== PatternHandler.EVENT) continue;
      const patterns = (Reflect.getMetadata(PATTERN_METADATA, method) as unknown[] | undefined) ?? [];
      const extras = Reflect.getMetadata(PATTERN_EXTRAS_METADATA, method) as EventConsumerExtras;
      for (const pattern of patterns) consumers.push(durableConsumerConfig(prefix, String(pattern), extras, maxDeliveries));
    }
  }
  return consumers;
}
