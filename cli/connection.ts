import { existsSync } from 'node:fs';
import { connect, type ConnectionOptions, type NatsConnection } from 'nats';
import { messageOf } from '@mesh/common';
import { parseOrThrow, type ReplyData, type RequestDefinition } from '@mesh/contracts';
import { JetStreamEventStore } from '@mesh/eventstore';
import { identityOf, natsAuthOptions, operatorCredsPath, readCreds, type CredsFile } from '@mesh/identity';
import { MeshClient, RequestError } from '@mesh/runtime';
import { CliError } from './output';
import { DATA_DIR } from './stack';

export const natsUrl = () => process.env.NATS_URL ?? 'nats://127.0.0.1:4222';
/** NATS_URL as the list nats.js takes: several servers (a cluster) are comma-separated, as for the services. */
export const natsServers = () =>
  natsUrl()
    .split(',')
    .map((u) => u.trim());

let credsOption: string | undefined;
/** The global `--creds <file>` option (set before any command runs). */
export const setCredsOption = (path: string | undefined) => (credsOption = path);

/**
 * The credentials the CLI connects with: `--creds`, else MESH_CREDS, else the local stack's operator
 * (`<data dir>/secrets/nats/operator.json`, written by `mesh up`), else none (a server without auth).
 */
export function credsFile(): string | undefined {
  if (credsOption) return credsOption;
  if (process.env.MESH_CREDS) return process.env.MESH_CREDS;
  const local = operatorCredsPath(DATA_DIR);
  return existsSync(local) ? local : undefined;
}

/** The parsed credentials, with a CLI error naming the file when it cannot be read. */
export function cliCreds(): CredsFile | undefined {
  const path = credsFile();
  if (!path) return undefined;
  try {
    return readCreds(path);
  } catch (err) {
    throw new CliError(messageOf(err), 'pass a credentials file written by `mesh up` or `mesh tenant create` (--creds <file> or MESH_CREDS)');
  }
}

/** Connection options of the CLI's identity: its nkey and inbox prefix (none without credentials). */
export function cliAuthOptions(): Pick<ConnectionOptions, 'authenticator' | 'inboxPrefix'> {
  const creds = cliCreds();
  return creds ? natsAuthOptions(creds) : {};
}

/** The tenant the CLI acts as (tenant credentials), or undefined for the operator. */
export function cliTenantId(): string | undefined {
  const creds = cliCreds();
  if (!creds) return undefined;
  const identity = identityOf(creds);
  return identity.kind === 'tenant' ? identity.tenantId : undefined;
}

/** One NATS connection for a CLI command, with a clear error when nothing listens or the credentials are refused. */
export async function withNats<T>(fn: (nc: NatsConnection) => Promise<T>): Promise<T> {
  let nc: NatsConnection;
  const auth = cliAuthOptions();
  try {
    nc = await connect({ servers: natsServers(), name: 'mesh-cli', timeout: 3000, noAsyncTraces: true, maxReconnectAttempts: 3, ...auth });
  } catch (err) {
    if (/authori[sz]ation violation|authentication/i.test(messageOf(err))) {
      const used = credsFile();
      throw new CliError(
        `NATS at ${natsUrl()} refused the credentials${used ? ` in ${used}` : ' (none given)'}`,
        'use --creds <file> or MESH_CREDS with a credentials file of this stack (the operator: <data dir>/secrets/nats/operator.json; a tenant: `mesh tenant create <id>`)',
      );
    }
    throw new CliError(`cannot reach NATS at ${natsUrl()}: ${messageOf(err)}`, 'start the local stack with `mesh up --detach` (or set NATS_URL)');
  }
  try {
    return await fn(nc);
  } finally {
    await nc.close().catch(() => undefined);
  }
}

/** A client as the CLI's identity: with tenant credentials its requests go to the tenant's own subjects. */
export const withClient = <T>(fn: (client: MeshClient, nc: NatsConnection) => Promise<T>) =>
  withNats((nc) => fn(new MeshClient(nc, 10_000, cliTenantId()), nc));

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
  // Said up front for a tenant: the server would let the request onto the tenant's own prefix, where
  // no service answers operator-only definitions (no_responders reads like a stopped service).
  if (client.tenantId !== undefined && definition.access !== 'tenant') {
    throw new CliError(
      `forbidden: tenant ${client.tenantId} may not call ${definition.subject} (operator only)`,
      "ask the operator, or use the operator's credentials (--creds / MESH_CREDS)",
    );
  }
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
  // mesh.api.<service>.x, or mesh.tenant.<tenantId>.api.<service>.x
  const tokens = err.subject.split('.');
  const service = tokens[1] === 'tenant' ? tokens[4] : tokens[2];
  const hint =
    err.code === 'no_responders' || err.code === 'timeout'
      ? `is the ${service} service running? Try \`mesh status\`, or \`mesh up --detach\``
      : err.issues?.length
        ? err.issues.map((i) => `${i.field || '(body)'}: ${i.rule}`).join('; ')
        : undefined;
  throw new CliError(`${err.message} [${err.code}]`, hint);
}
