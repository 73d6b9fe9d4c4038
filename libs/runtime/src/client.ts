import { NatsError, type NatsConnection } from 'nats';
import { messageOf } from '@mesh/common';
import { parseOrThrow, type ReplyData, type RequestData, type RequestDefinition } from '@mesh/contracts';
import { decodeJson, encodeJson } from './json';
import { RequestError, type Reply } from './replies';
import { outgoingHeaders } from './transport';

/** Calls commands and queries over NATS request/reply; validates before sending and after receiving. */
export class MeshClient {
  constructor(
    private readonly nc: NatsConnection,
    private readonly defaultTimeoutMs = 5000,
  ) {}

  async request<D extends RequestDefinition>(definition: D, data: RequestData<D>, timeoutMs = this.defaultTimeoutMs): Promise<ReplyData<D>> {
    const body = parseOrThrow(definition.schema, data, definition.subject);
    const reply = await this.requestRaw(definition.subject, body, timeoutMs);
    return parseOrThrow(definition.reply, reply, `${definition.subject} reply`) as ReplyData<D>;
  }

  /** For subjects without a definition at hand (CLI passthrough, tests). */
  async requestRaw(subject: string, body: unknown, timeoutMs = this.defaultTimeoutMs): Promise<unknown> {
    let msg;
    try {
      msg = await this.nc.request(subject, encodeJson(body), { timeout: timeoutMs, headers: outgoingHeaders() });
    } catch (err) {
      const code = err instanceof NatsError ? err.code : undefined;
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
