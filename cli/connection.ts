import { connect, type NatsConnection } from 'nats';
import { messageOf } from '@mesh/common';
import { parseOrThrow, type ReplyData, type RequestDefinition } from '@mesh/contracts';
import { JetStreamEventStore } from '@mesh/eventstore';
import { MeshClient, RequestError } from '@mesh/runtime';
import { CliError } from './output';

export const natsUrl = () => process.env.NATS_URL ?? 'nats://127.0.0.1:4222';

/** One NATS connection for a CLI command, with a clear error when nothing listens. */
export async function withNats<T>(fn: (nc: NatsConnection) => Promise<T>): Promise<T> {
  let nc: NatsConnection;
  try {
    nc = await connect({ servers: natsUrl(), name: 'mesh-cli', timeout: 3000, noAsyncTraces: true, maxReconnectAttempts: 3 });
  } catch (err) {
    throw new CliError(`cannot reach NATS at ${natsUrl()}: ${messageOf(err)}`, 'start the local stack with `mesh up --detach` (or set NATS_URL)');
  }
  try {
    return await fn(nc);
  } finally {
    await nc.close().catch(() => undefined);
  }
}

export const withClient = <T>(fn: (client: MeshClient, nc: NatsConnection) => Promise<T>) => withNats((nc) => fn(new MeshClient(nc, 10_000), nc));

export const withStore = <T>(fn: (store: JetStreamEventStore, nc: NatsConnection) => Promise<T>) =>
  withNats(async (nc) => fn(await JetStreamEventStore.connect(nc), nc));

/** What a service answered: `data` checked against the definition's reply schema, `json` exactly as it came (what --json prints). */
export interface Answer<D extends RequestDefinition> {
  data: ReplyData<D>;
  json: unknown;
}

/**
 * Calls a command or query and turns refusals into CLI errors with what to do. The body goes as
 * given (the service validates it and names each field and rule); the reply is checked against the
 * definition's schema.
 */
export async function call<D extends RequestDefinition>(client: MeshClient, definition: D, body: unknown, timeoutMs?: number): Promise<Answer<D>> {
  let json: unknown;
  try {
    json = await client.requestRaw(client.subjectFor(definition), body, timeoutMs);
  } catch (err) {
    return rethrow(err);
  }
  const data: ReplyData<D> = parseOrThrow<D['reply']>(definition.reply, json, `${definition.subject} reply`);
  return { data, json };
}

/** `body` without its undefined fields (options not given are not sent). */
export function definedOnly(body: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(body).filter(([, v]) => v !== undefined));
}

/** A request refusal as a CLI error: the service's message and what to do about it. */
export function rethrow(err: unknown): never {
  if (!(err instanceof RequestError)) throw err;
  const service = err.subject.split('.')[2];
  const hint =
    err.code === 'no_responders' || err.code === 'timeout'
      ? `is the ${service} service running? Try \`mesh status\`, or \`mesh up --detach\``
      : err.issues?.length
        ? err.issues.map((i) => `${i.field || '(body)'}: ${i.rule}`).join('; ')
        : undefined;
  throw new CliError(`${err.message} [${err.code}]`, hint);
}
