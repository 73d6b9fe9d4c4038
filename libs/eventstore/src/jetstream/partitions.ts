import { nuid, type NatsConnection } from 'nats';
import { EventSubjects, PARTITION_PROBE_PREFIX, PARTITIONS_MAX } from '@mesh/contracts';

/**
 * The log's layout as the server maps it (docs/cluster.md "Partitions"): a publish on
 * `mesh.partitions.probe.<nonce>` comes back as `...<nonce>.<P>` from a server that partitions the
 * event subjects (libs/identity writes the mapping), unchanged from one that does not. The server
 * delivers a message to its own publisher's subscription before it answers the flush's PING, so the
 * answer is there after one round trip, with no timeout to guess.
 */
export async function detectPartitions(nc: NatsConnection): Promise<EventSubjects> {
  const nonce = nuid.next();
  const subject = `${PARTITION_PROBE_PREFIX}.${nonce}`;
  const seen: string[] = [];
  const plain = nc.subscribe(subject, { callback: (_err, msg) => seen.push(msg.subject) });
  const mapped = nc.subscribe(`${subject}.*`, { callback: (_err, msg) => seen.push(msg.subject) });
  try {
    await nc.flush(); // both subscriptions registered before the publish
    nc.publish(subject);
    await nc.flush();
  } finally {
    plain.unsubscribe();
    mapped.unsubscribe();
  }
  if (seen.length !== 1) {
    throw new Error(
      `partition probe: ${seen.length} answers on ${subject}(.*) (expected exactly 1: the identity needs publish and subscribe on ${PARTITION_PROBE_PREFIX}.>)`,
    );
  }
  if (seen[0] === subject) return new EventSubjects(1);
  const token = seen[0].slice(subject.length + 1);
  const partitions = /^\d{1,2}$/.test(token) ? Number(token) : Number.NaN;
  if (!(partitions >= 2 && partitions <= PARTITIONS_MAX))
    throw new Error(`partition probe: the server answered ${seen[0]}, not a partition count 2..${PARTITIONS_MAX}`);
  return new EventSubjects(partitions);
}
