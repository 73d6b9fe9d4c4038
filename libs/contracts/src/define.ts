import { z } from 'zod';
import type { Category } from './ids';
import { parseOrThrow } from './validate';
import { ContractError } from './errors';

/** One typed event: its type name, the category it lives in, its data schema and a sentence on its meaning. */
export interface EventDefinition<T extends string = string, S extends z.ZodType = z.ZodType> {
  kind: 'event';
  type: T;
  category: Category;
  schemaVersion: number;
  schema: S;
  description: string;
}

export function defineEvent<T extends string, S extends z.ZodType>(
  category: Category,
  type: T,
  schema: S,
  description: string,
  schemaVersion = 1,
): EventDefinition<T, S> {
  return { kind: 'event', type, category, schema, description, schemaVersion };
}

/** One typed command or query answered over NATS request/reply on `subject`. */
export interface RequestDefinition<S extends z.ZodType = z.ZodType, R extends z.ZodType = z.ZodType> {
  kind: 'command' | 'query';
  name: string;
  subject: string;
  schema: S;
  reply: R;
  description: string;
  /**
   * Who may call it: `operator` (default) only on `subject`, which only the operator and the services
   * may publish to; `tenant` also on every tenant's `mesh.tenant.<tenantId>.<...>` copy of the subject,
   * where the handler checks that the tenant owns what the request names (libs/contracts/src/tenancy.ts).
   */
  access: RequestAccess;
}

export type RequestAccess = 'operator' | 'tenant';

export function defineRequest<S extends z.ZodType, R extends z.ZodType>(
  kind: 'command' | 'query',
  subject: string,
  schema: S,
  reply: R,
  description: string,
  options: { access?: RequestAccess } = {},
): RequestDefinition<S, R> {
  return { kind, name: subject.split('.').pop()!, subject, schema, reply, description, access: options.access ?? 'operator' };
}

export type EventData<D extends EventDefinition> = z.output<D['schema']>;
export type RequestData<D extends RequestDefinition> = z.output<D['schema']>;
export type ReplyData<D extends RequestDefinition> = z.output<D['reply']>;

/** A typed event ready for the store: `{ id, type, data }` checked against its definition. */
export function eventOf<D extends EventDefinition>(definition: D, id: string, data: EventData<D>) {
  return { id, type: definition.type as D['type'], data: parseOrThrow(definition.schema, data, definition.type) as EventData<D> };
}

/** Lookup from type name to definition, used to validate at every boundary. */
export class EventCatalog {
  private readonly byType = new Map<string, EventDefinition>();

  constructor(definitions: Iterable<EventDefinition>) {
    for (const definition of definitions) {
      if (this.byType.has(definition.type)) throw new Error(`event type ${definition.type} defined twice`);
      this.byType.set(definition.type, definition);
    }
  }

  get(type: string): EventDefinition | undefined {
    return this.byType.get(type);
  }

  all(): EventDefinition[] {
    return [...this.byType.values()];
  }

  /** Validates `data` for `type` written to a stream of `category`; throws ContractError naming the field. */
  validate(type: string, category: string, data: unknown): unknown {
    const definition = this.byType.get(type);
    if (!definition) throw ContractError.single(type, 'type', 'is not a known event type');
    if (definition.category !== category) {
      throw ContractError.single(type, 'stream', `${type} belongs to category ${definition.category}, not ${category}`);
    }
    return parseOrThrow(definition.schema, data, type);
  }
}
