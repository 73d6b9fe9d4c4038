import type { NatsConnection } from 'nats';
import { EVENTS_STREAM } from '@mesh/contracts';

/**
 * Replicas for a KV or object bucket this process creates: as many as the event stream has
 * (EVENT_REPLICAS when the services created it: 1 on one server, 3 in a NATS cluster), so snapshots,
 * relay checkpoints and task inputs/outputs survive the loss of a server as the log does. Matters only
 * when the bucket is created (opening an existing one keeps its replicas). 1 when the stream cannot be
 * asked about (not created yet, or an identity without the permission, e.g. a tenant: its buckets are
 * created by `mesh tenant create` as the operator).
 */
export async function bucketReplicas(nc: NatsConnection): Promise<number> {
  try {
    return (await (await nc.jetstreamManager()).streams.info(EVENTS_STREAM)).config.num_replicas || 1;
  } catch {
    return 1;
  }
}
