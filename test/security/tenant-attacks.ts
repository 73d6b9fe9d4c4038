import { randomUUID } from 'node:crypto';
import { headers as natsHeaders, type NatsConnection } from 'nats';
import { allRequestDefinitions, type RequestDefinition } from '@mesh/contracts';
import { eventually, runMesh, type MeshRun } from '@mesh/testing';
import { RequestError } from '@mesh/runtime';
import type { SecurityHarness } from './harness';

/**
 * Helpers of the cross-tenant attack suite (cross-tenant.spec.ts): refusals as RequestError codes,
 * the `mesh` CLI run as a tenant, the operator-only request table, and the bytes of a forged event.
 */

/** Resolves when `attempt` is refused with `code` and a message matching `message`; fails on success or on any other refusal. */
export async function expectRefused(attempt: Promise<unknown>, code: string, message: RegExp): Promise<RequestError> {
  const outcome = await attempt.then(
    (value) => ({ ok: true as const, value }),
    (err: unknown) => ({ ok: false as const, err }),
  );
  if (outcome.ok) throw new Error(`the attack succeeded (expected ${code} ${message}): ${JSON.stringify(outcome.value).slice(0, 500)}`);
  const err = outcome.err;
  if (!(err instanceof RequestError)) throw err;
  expect({ code: err.code, message: err.message }).toEqual({ code, message: expect.stringMatching(message) as string });
  return err;
}

/** A refusal naming who and what: `forbidden: tenant bob may not <verb> <what>`. */
export const expectForbidden = (attempt: Promise<unknown>, message: RegExp) => expectRefused(attempt, 'forbidden', message);

/** `mesh --creds <tenant's file> ...args` against the harness's stack, as a tenant runs it. */
export function meshAs(harness: SecurityHarness, tenantId: string, ...args: string[]): Promise<MeshRun> {
  const env = { ...process.env, NATS_URL: harness.server.url, MESH_DATA_DIR: harness.server.dataDir!, MESH_FROM_SOURCE: '1' };
  return runMesh(['--creds', harness.credsPath({ kind: 'tenant', tenantId }), ...args], env);
}

/** The subject a request definition is sent on (a dead-letter replay names its consumer after it). */
export const concreteSubject = (definition: RequestDefinition) =>
  definition.subject.endsWith('.deadletter-replay') ? `${definition.subject}.some_consumer` : definition.subject;

/** Every request only the operator may make (no `access: 'tenant'`): money movements, price plans, audits, nodes, health, replays. */
export const operatorOnlyRequests = () => allRequestDefinitions().filter((d) => d.access !== 'tenant');

/**
 * A subscription the server refuses, on a connection of its own (a refused subscription is reported
 * asynchronously; the iterator ends with the permission error).
 */
export async function expectSubscriptionRefused(nc: NatsConnection, subject: string): Promise<void> {
  const sub = nc.subscribe(subject);
  const outcome = (async () => {
    for await (const _ of sub) return 'a message arrived';
    return 'closed without error';
  })();
  await expect(outcome).rejects.toThrow(/permission/i);
}

/** The bytes and headers of an event as the event store writes them: what a forger would need to get into MESH_EVENTS. */
export function forgedEventBytes(stream: string, type: string, data: Record<string, unknown>, revision = 0) {
  const id = `forged-${randomUUID()}`;
  const body = { id, stream, type, data, schemaVersion: 1, occurredAt: new Date().toISOString(), correlationId: id, causationId: id, revision };
  const h = natsHeaders();
  h.set('Nats-Msg-Id', id);
  h.set('Mesh-Revision', String(revision));
  h.set('Mesh-Type', type);
  return { id, payload: new TextEncoder().encode(JSON.stringify(body)), headers: h };
}

/** Collects what arrives on a subscription (at most `max` messages), for "what did this tenant see" checks. */
export function collect(nc: NatsConnection, subject: string, max = 10_000): { messages: { subject: string; body: { type?: string; stream?: string } }[] } {
  const seen = { messages: [] as { subject: string; body: { type?: string; stream?: string } }[] };
  const sub = nc.subscribe(subject);
  void (async () => {
    for await (const m of sub) {
      if (seen.messages.length >= max) break;
      seen.messages.push({ subject: m.subject, body: JSON.parse(new TextDecoder().decode(m.data)) as { type?: string; stream?: string } });
    }
  })().catch(() => undefined);
  return seen;
}

/** Polls a task through `read` until it has ended (bounded), returning its last detail. */
export function untilEnded<T extends { state: string }>(read: () => Promise<T>, timeoutMs = 240_000): Promise<T> {
  return eventually(
    async () => {
      const t = await read();
      return ['succeeded', 'failed', 'cancelled'].includes(t.state) ? t : undefined;
    },
    timeoutMs,
    'the task to end',
  );
}
