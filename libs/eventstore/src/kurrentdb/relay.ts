import { headers as natsHeaders, type KV, type NatsConnection } from 'nats';
import { subjectForStream, type RecordedEvent } from '@mesh/contracts';
import { REVISION_HEADER, TYPE_HEADER } from '../jetstream/jetstream-event-store';
import { bucketReplicas } from '../jetstream/replicas';
import type { EventStore, Subscription } from '../port';

export const RELAY_CHECKPOINT_BUCKET = 'mesh-relay-checkpoints';

/** The JetStream message a relayed event becomes: the same subject, headers and body as a native append. */
export function relayMessage(event: RecordedEvent): { subject: string; body: Uint8Array; headers: Record<string, string> } {
  const { position: _position, traceparent, ...envelope } = event;
  return {
    subject: subjectForStream(event.stream),
    body: Buffer.from(JSON.stringify(envelope)), // with its revision, as a native append
    headers: {
      'Nats-Msg-Id': event.id,
      [REVISION_HEADER]: String(event.revision),
      [TYPE_HEADER]: event.type,
      ...(traceparent ? { traceparent } : {}),
    },
  };
}

/**
 * Tails $all of KurrentDB from a stored checkpoint and republishes each event to the same JetStream
 * subjects (deduplicated by event id), so consumers are identical in both modes. The checkpoint is
 * written after the publish is acknowledged: a crash republishes at most the last event, and
 * JetStream's Nats-Msg-Id dedup drops it.
 */
export class KurrentRelay {
  private subscription?: Subscription;
  private kv?: KV;

  constructor(
    private readonly source: EventStore,
    private readonly nc: NatsConnection,
    private readonly name = 'default',
  ) {}

  async start(): Promise<void> {
    this.kv = await this.nc.jetstream().views.kv(RELAY_CHECKPOINT_BUCKET, { history: 1, replicas: await bucketReplicas(this.nc) });
    const stored = await this.kv.get(this.name);
    const after = stored?.value.length ? BigInt(Buffer.from(stored.value).toString()) : 0n;
    const js = this.nc.jetstream();
    this.subscription = this.source.subscribe({ after }, async (event) => {
      const message = relayMessage(event);
      const h = natsHeaders();
      for (const [k, v] of Object.entries(message.headers)) h.set(k, v);
      await js.publish(message.subject, message.body, { headers: h });
      await this.kv!.put(this.name, event.position.toString());
    });
  }

  get position(): bigint {
    return this.subscription?.position ?? 0n;
  }

  async stop(): Promise<void> {
    await this.subscription?.stop();
  }
}
