import { NatsError, createInbox, type NatsConnection } from 'nats';
import { messageOf } from '@mesh/common';
import { parseOrThrow, requestSubjectFor, tenantInboxPrefix, type ReplyData, type RequestData, type RequestDefinition } from '@mesh/contracts';
import { decodeJson, encodeJson } from './json';
import { RequestError, type Reply } from './replies';
import { outgoingHeaders } from './transport';

/**
 * Calls commands and queries over NATS request/reply; validates before sending and after receiving.
 * With `tenantId`, requests go to the tenant's subjects (`mesh.tenant.<tenantId>.*`), the only ones a
 * tenant's NATS identity may publish to; without, to the operator subjects.
 */
export class MeshClient {
  constructor(
    private readonly nc: NatsConnection,
    private readonly defaultTimeoutMs = 5000,
    readonly tenantId?: string,
  ) {}

  /** The subject this client sends `definition` on. */
  subjectFor(definition: Pick<RequestDefinition, 'subject'>): string {
    return requestSubjectFor(definition, this.tenantId);
  }

  async request<D extends RequestDefinition>(definition: D, data: RequestData<D>, timeoutMs = this.defaultTimeoutMs): Promise<ReplyData<D>> {
    const body = parseOrThrow(definition.schema, data, definition.subject);
    const reply = await this.requestRaw(this.subjectFor(definition), body, timeoutMs);
    return parseOrThrow(definition.reply, reply, `${definition.subject} reply`) as ReplyData<D>;
  }

  /** For subjects without a definition at hand (CLI passthrough, tests). */
  async requestRaw(subject: string, body: unknown, timeoutMs = this.defaultTimeoutMs): Promise<unknown> {
    let msg;
    try {
      // A tenant's request is answered only on the tenant's own inbox (the transport refuses any other
      // reply subject), whatever inbox prefix this connection was opened with.
      const reply = this.tenantId === undefined ? {} : { noMux: true, reply: createInbox(tenantInboxPrefix(this.tenantId)) };
      msg = await this.nc.request(subject, encodeJson(body), { timeout: timeoutMs, headers: outgoingHeaders(), ...reply });
    } catch (err) {
      const code = err instanceof NatsError ? err.code : undefined;
      // NATS itself refused the publish: this identity has no permission on the subject.
      if (err instanceof NatsError && err.isPermissionError())
        throw new RequestError(subject, 'forbidden', `forbidden: this identity may not publish to ${subject} (NATS permissions)`, undefined, { cause: err });
      if (code === '503') throw new RequestError(subject, 'no_responders', `no service answers ${subject}: is it running?`, undefined, { cause: err });
      if (code === 'TIMEOUT' || /timeout/i.test(messageOf(err)))
        throw new RequestError(subject, 'timeout', `${subject} did not answer within ${timeoutMs} ms`, undefined, { cause: err });
      throw err;
    }
    const reply = decodeJson(msg.data) as Reply<unknown>;
    if (!reply || typeof reply !== 'object' || !('ok' in reply)) throw new RequestError(subject, 'bad_reply', `${subject} answered without an ok field`);
    if (!reply.ok) throw new RequestError(subject, reply.error.code, reply.error.message, reply.error.issues);
    return reply.data;
  }
}
