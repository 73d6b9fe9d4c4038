import { z } from 'zod';
import { catalog } from './catalog';
import type { EventDefinition, RequestDefinition } from './define';
import { envelopeSchema } from './envelope';
import { CATEGORY_OWNERS } from './ids';
import { allRequestDefinitions } from './requests/registry';
import { EVENTS_PREFIX, HEARTBEAT_PREFIX } from './subjects';
import { nodeHeartbeatSchema } from './events/container-manager';

/** JSON Schema of a zod schema (draft 2020-12); refinements that JSON Schema can't say are dropped. */
export function jsonSchemaOf(schema: z.ZodType): Record<string, unknown> {
  return z.toJSONSchema(schema, { unrepresentable: 'any', io: 'input' });
}

/** The JSON Schema of one event as a subscriber receives it: the envelope with typed data. */
export function eventJsonSchema(definition: EventDefinition): Record<string, unknown> {
  const envelope = jsonSchemaOf(
    envelopeSchema.extend({
      type: z.literal(definition.type),
      data: definition.schema,
      revision: z.int().min(0).describe('0-based revision of the event in its stream (also in the Mesh-Revision header)'),
    }),
  );
  return { $id: `mesh:event:${definition.type}`, title: definition.type, description: definition.description, ...envelope };
}

/**
 * AsyncAPI 3.0 document for every NATS subject of mesh, generated from the same zod definitions the
 * services validate with: event channels per category, request/reply operations per command/query,
 * and the heartbeat channel.
 */
export function asyncApiDocument(version = '0.1.0') {
  const channels: Record<string, unknown> = {};
  const operations: Record<string, unknown> = {};
  const messages: Record<string, unknown> = {};
  const byCategory = new Map<string, EventDefinition[]>();
  for (const definition of catalog.all()) {
    byCategory.set(definition.category, [...(byCategory.get(definition.category) ?? []), definition]);
    messages[definition.type] = {
      name: definition.type,
      title: definition.type,
      summary: definition.description,
      contentType: 'application/json',
      headers: {
        type: 'object',
        properties: {
          'Nats-Msg-Id': { type: 'string', description: 'the event id (JetStream dedup)' },
          'Mesh-Type': { type: 'string', const: definition.type },
          'Mesh-Revision': { type: 'string', description: '0-based revision of the event in its stream' },
          traceparent: { type: 'string', description: 'W3C trace context of the writer' },
        },
      },
      payload: eventJsonSchema(definition),
    };
  }
  for (const [category, definitions] of byCategory) {
    const id = `events_${category}`;
    channels[id] = {
      address: `${EVENTS_PREFIX}.${category}.{id}`,
      title: `${category} events`,
      description: `Stream ${category}-<id>; written only by ${CATEGORY_OWNERS[category as keyof typeof CATEGORY_OWNERS]}. Persisted in JetStream stream MESH_EVENTS.`,
      parameters: { id: { description: `the ${category} id ([A-Za-z0-9_-]{1,128})` } },
      messages: Object.fromEntries(definitions.map((d) => [d.type, { $ref: `#/components/messages/${d.type}` }])),
    };
    operations[`receive_${category}`] = { action: 'receive', channel: { $ref: `#/channels/${id}` }, summary: `Subscribe to ${category} events` };
  }
  for (const request of allRequestDefinitions()) addRequest(request, channels, operations, messages);
  channels.heartbeats = {
    address: `${HEARTBEAT_PREFIX}.{nodeId}`,
    title: 'node heartbeats (core NATS, not persisted)',
    parameters: { nodeId: { description: 'the node id' } },
    messages: { NodeHeartbeat: { $ref: '#/components/messages/NodeHeartbeat' } },
  };
  messages.NodeHeartbeat = { name: 'NodeHeartbeat', contentType: 'application/json', payload: jsonSchemaOf(nodeHeartbeatSchema) };
  operations.receive_heartbeats = { action: 'receive', channel: { $ref: '#/channels/heartbeats' } };
  return {
    asyncapi: '3.0.0',
    info: { title: 'mesh', version, description: 'Event-sourced billing and scheduling mesh: NATS subjects, events, commands and queries.' },
    defaultContentType: 'application/json',
    servers: { local: { host: '127.0.0.1:4222', protocol: 'nats', description: 'embedded default (infra/local/provision.sh)' } },
    channels,
    operations,
    components: { messages },
  };
}

function addRequest(request: RequestDefinition, channels: Record<string, unknown>, operations: Record<string, unknown>, messages: Record<string, unknown>) {
  const id = request.subject.replace(/\./g, '_');
  const replyId = `${id}_reply`;
  messages[id] = { name: id, summary: request.description, contentType: 'application/json', payload: jsonSchemaOf(request.schema) };
  messages[replyId] = {
    name: replyId,
    contentType: 'application/json',
    payload: {
      oneOf: [
        { type: 'object', properties: { ok: { const: true }, data: jsonSchemaOf(request.reply) }, required: ['ok', 'data'] },
        {
          type: 'object',
          properties: {
            ok: { const: false },
            error: { type: 'object', properties: { code: { type: 'string' }, message: { type: 'string' }, issues: { type: 'array' } } },
          },
          required: ['ok', 'error'],
        },
      ],
    },
  };
  channels[id] = { address: request.subject, title: `${request.kind} ${request.name}`, messages: { [id]: { $ref: `#/components/messages/${id}` } } };
  channels[replyId] = { address: null, title: `reply to ${request.subject}`, messages: { [replyId]: { $ref: `#/components/messages/${replyId}` } } };
  operations[id] = {
    action: 'receive',
    channel: { $ref: `#/channels/${id}` },
    summary: request.description,
    reply: { channel: { $ref: `#/channels/${replyId}` } },
  };
}
