import { MODULE_METADATA } from '@nestjs/common/constants';
import type { DynamicModule, Type } from '@nestjs/common';
import { PATTERN_EXTRAS_METADATA, PATTERN_HANDLER_METADATA, PATTERN_METADATA } from '@nestjs/microservices/constants';
import { PatternHandler } from '@nestjs/microservices/enums/pattern-handler.enum';
import { AckPolicy, DeliverPolicy, nanos, type ConsumerConfig } from 'nats';
import { PLAIN_SUBJECTS, type EventSubjects } from '@mesh/contracts';
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
 * service's consumer prefix (its name, or per node; an instance's name for `everyReplica`), its
 * filter the category's in the log's layout, or one partition's (`partition`, a partitioned handler).
 * One definition, used by the transport at start and by whoever must create the same consumer
 * beforehand (the restart bench creates it at the log's head, as a restarted service finds it).
 */
export function durableConsumerConfig(
  prefix: string,
  extras: EventConsumerExtras,
  maxDeliveriesDefault: number,
  subjects: EventSubjects = PLAIN_SUBJECTS,
  partition?: number,
): DurableConsumer {
  const maxDeliveries = extras.maxDeliveries ?? maxDeliveriesDefault;
  const base = [prefix, extras.category, extras.name].filter(Boolean).join('_');
  return {
    maxDeliveries,
    config: {
      durable_name: partition === undefined ? base : `${base}_p${partition}`,
      filter_subject: partition === undefined ? subjects.categoryFilter(extras.category) : subjects.partitionFilter(extras.category, partition),
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
export function durableConsumersOf<S extends EnvSpec>(
  definition: ServiceDefinition<S>,
  core: MeshCore<ConfigOf<S & typeof commonEnv>>,
  subjects: EventSubjects = PLAIN_SUBJECTS,
): DurableConsumer[] {
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
      for (const _pattern of patterns)
        consumers.push(...consumersOfHandler(prefix, core.leadership?.instance, extras, maxDeliveries, subjects).map(({ consumer }) => consumer));
    }
  }
  return consumers;
}

/** Who runs a durable consumer: the service's leader, every replica (its own), or the holder of a partition's lease. */
export type ConsumerRunner = { by: 'leader' } | { by: 'every-replica' } | { by: 'partition'; partition: number };

/**
 * The durable consumers of one handler in a layout, each with who runs it: one run by the leader
 * (the plain layout, or a handler that is neither partitioned nor everyReplica), one per partition,
 * or one of this instance run by every replica.
 */
export function consumersOfHandler(
  prefix: string,
  instance: string | undefined,
  extras: EventConsumerExtras,
  maxDeliveries: number,
  subjects: EventSubjects,
): { consumer: DurableConsumer; runner: ConsumerRunner }[] {
  if (subjects.partitioned && extras.partitioned) {
    return Array.from({ length: subjects.partitions }, (_, partition) => ({
      consumer: durableConsumerConfig(prefix, extras, maxDeliveries, subjects, partition),
      runner: { by: 'partition', partition },
    }));
  }
  if (subjects.partitioned && extras.everyReplica && instance) {
    return [{ consumer: durableConsumerConfig(instance, extras, maxDeliveries, subjects), runner: { by: 'every-replica' } }];
  }
  return [{ consumer: durableConsumerConfig(prefix, extras, maxDeliveries, subjects), runner: { by: 'leader' } }];
}
