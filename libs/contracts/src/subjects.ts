import { parseStreamName, type ServiceName } from './ids';

/** All persisted events live under this prefix, one JetStream stream (`MESH_EVENTS`). */
export const EVENTS_PREFIX = 'mesh.events';
export const EVENTS_STREAM = 'MESH_EVENTS';

/** `wallet-alice` -> `mesh.events.wallet.alice` */
export function subjectForStream(stream: string): string {
  const { category, id } = parseStreamName(stream);
  return `${EVENTS_PREFIX}.${category}.${id}`;
}

/** `mesh.events.wallet.alice` (or, partitioned, `mesh.events.wallet.alice.3`) -> `wallet-alice` */
export function streamForSubject(subject: string): string {
  const parts = subject.split('.');
  const partitioned = parts.length === 5 && PARTITION_TOKEN.test(parts[4]);
  if ((parts.length !== 4 && !partitioned) || `${parts[0]}.${parts[1]}` !== EVENTS_PREFIX) throw new Error(`not an event subject: ${subject}`);
  return `${parts[2]}-${parts[3]}`;
}

export const categorySubject = (category: string) => `${EVENTS_PREFIX}.${category}.*`;

// --- partitions (docs/cluster.md "Partitions") ------------------------------------------------------
//
// With P > 1 partitions the nats-server maps every event subject `mesh.events.<category>.<id>` to
// `mesh.events.<category>.<id>.<p>`, p = the server's own hash of the id modulo P (an account
// `mappings` entry, `{{partition(P,2)}}`, libs/identity writes it). Writers keep publishing on the
// 4-token subject; the stored subject carries the partition, so a durable consumer per partition
// filters `mesh.events.<category>.*.<p>`, and every event of one id (a container's samples, a
// charge's stream) is in one partition, in order. P is fixed when the log is created.

/** Largest partition count: one durable consumer and one lease per partition and consumer. */
export const PARTITIONS_MAX = 64;
/** A partition token as the server's mapping writes it (0..99, no leading zero): for regexes over whole subjects. */
export const PARTITION_TOKEN_PATTERN = '(?:0|[1-9][0-9]?)';
const PARTITION_TOKEN = new RegExp(`^${PARTITION_TOKEN_PATTERN}$`);

/**
 * The subjects of one log layout: `partitions` 1 is the plain layout (no mapping); above 1, stored
 * subjects carry the partition. The one place the store, the transport and the CLI take filters from.
 */
export class EventSubjects {
  constructor(readonly partitions: number) {
    if (!Number.isInteger(partitions) || partitions < 1 || partitions > PARTITIONS_MAX) {
      throw new Error(`partitions: ${partitions} is not an integer in 1..${PARTITIONS_MAX}`);
    }
  }

  get partitioned(): boolean {
    return this.partitions > 1;
  }

  /** The filter matching exactly the stored messages of one stream. */
  streamFilter(stream: string): string {
    const subject = subjectForStream(stream);
    return this.partitioned ? `${subject}.*` : subject;
  }

  /** The filter matching every stored message of one category. */
  categoryFilter(category: string): string {
    return this.partitioned ? `${EVENTS_PREFIX}.${category}.*.*` : categorySubject(category);
  }

  /** The filter of one partition of a category (partitioned layout only). */
  partitionFilter(category: string, partition: number): string {
    if (!this.partitioned || !Number.isInteger(partition) || partition < 0 || partition >= this.partitions) {
      throw new Error(`partition ${partition} of ${this.partitions}: not a partition of this layout`);
    }
    return `${EVENTS_PREFIX}.${category}.*.${partition}`;
  }
}

export const PLAIN_SUBJECTS = new EventSubjects(1);

/**
 * A probe through the server's mapping, so that every process learns the layout from the server
 * itself (the one place it is configured): a publish on `<prefix>.<nonce>` arrives as
 * `<prefix>.<nonce>.<P>` when the server maps, unchanged when it does not (libs/eventstore
 * detectPartitions).
 */
export const PARTITION_PROBE_PREFIX = 'mesh.partitions.probe';

/**
 * The nats-server `mappings` of a partitioned log (empty for 1 partition). The second entry sends a
 * direct publish on a 5-token event subject (a forged partition) to a subject nobody may publish
 * on, so the server refuses it: the partition is always the server's.
 */
export function partitionMappings(partitions: number): Record<string, string> {
  const layout = new EventSubjects(partitions);
  if (!layout.partitioned) return {};
  return {
    [`${EVENTS_PREFIX}.*.*`]: `${EVENTS_PREFIX}.{{wildcard(1)}}.{{wildcard(2)}}.{{partition(${partitions},2)}}`,
    [`${EVENTS_PREFIX}.*.*.*`]: `${REFUSED_PREFIX}.{{wildcard(1)}}.{{wildcard(2)}}.{{wildcard(3)}}`,
    [`${PARTITION_PROBE_PREFIX}.*`]: `${PARTITION_PROBE_PREFIX}.{{wildcard(1)}}.${partitions}`,
  };
}

/** Where the mapping sends forged partition subjects: no identity may publish here, no stream stores it. */
export const REFUSED_PREFIX = 'mesh.refused';

/** Commands: `mesh.api.<service>.<command>`; queries: `mesh.query.<service>.<query>`. */
export const apiSubject = (service: ServiceName, command: string) => `mesh.api.${service}.${command}`;
export const querySubject = (service: ServiceName, query: string) => `mesh.query.${service}.${query}`;
export const healthSubject = (service: ServiceName) => apiSubject(service, 'health');

/** Core NATS, not persisted. */
export const HEARTBEAT_PREFIX = 'mesh.heartbeat.node';
export const heartbeatSubject = (nodeId: string) => `${HEARTBEAT_PREFIX}.${nodeId}`;

// JetStream object store buckets are per owner: inputBucketOf / outputBucketOf in tenancy.ts.
