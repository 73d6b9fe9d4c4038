import { connect, type NatsConnection } from 'nats';
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
    throw new CliError(`cannot reach NATS at ${natsUrl()}: ${(err as Error).message}`, 'start the local stack with `mesh up --detach` (or set NATS_URL)');
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

/** Calls a command/query subject and turns refusals into CLI errors with what to do. */
export async function call(client: MeshClient, subject: string, body: unknown, timeoutMs?: number): Promise<any> {
  try {
    return await client.requestRaw(subject, body, timeoutMs);
  } catch (err) {
    return rethrow(err);
  }
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
