import { parseStreamName, type ServiceName } from './ids';

/** All persisted events live under this prefix, one JetStream stream (`MESH_EVENTS`). */
export const EVENTS_PREFIX = 'mesh.events';
export const EVENTS_STREAM = 'MESH_EVENTS';

/** `wallet-alice` -> `mesh.events.wallet.alice` */
export function subjectForStream(stream: string): string {
  const { category, id } = parseStreamName(stream);
  return `${EVENTS_PREFIX}.${category}.${id}`;
}

/** `mesh.events.wallet.alice` -> `wallet-alice` */
export function streamForSubject(subject: string): string {
  const parts = subject.split('.');
  if (parts.length !== 4 || `${parts[0]}.${parts[1]}` !== EVENTS_PREFIX) throw new Error(`not an event subject: ${subject}`);
  return `${parts[2]}-${parts[3]}`;
}

export const categorySubject = (category: string) => `${EVENTS_PREFIX}.${category}.*`;

/** Commands: `mesh.api.<service>.<command>`; queries: `mesh.query.<service>.<query>`. */
export const apiSubject = (service: ServiceName, command: string) => `mesh.api.${service}.${command}`;
export const querySubject = (service: ServiceName, query: string) => `mesh.query.${service}.${query}`;
export const healthSubject = (service: ServiceName) => apiSubject(service, 'health');

/** Core NATS, not persisted. */
export const HEARTBEAT_PREFIX = 'mesh.heartbeat.node';
export const heartbeatSubject = (nodeId: string) => `${HEARTBEAT_PREFIX}.${nodeId}`;

// JetStream object store buckets are per owner: inputBucketOf / outputBucketOf in tenancy.ts.
