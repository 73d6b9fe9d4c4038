import { CATEGORIES, CATEGORY_OWNERS, SERVICES, type Category, type ServiceName } from './ids';
import { EVENTS_PREFIX, EVENTS_STREAM, HEARTBEAT_PREFIX, PARTITION_PROBE_PREFIX, apiSubject, healthSubject } from './subjects';
import { TENANT_SUBJECT_PREFIX, tenantEventsPrefix, tenantInboxPrefix } from './tenancy';
import { deadLetterReplaySubject } from './requests/deadletter';

/**
 * Who may publish and subscribe to what on NATS: the one source of truth for the nats-server
 * authorization block (libs/identity writes it), the runtime's consumer check (transport.ts) and the
 * permission table in docs/security.md (generated from here).
 *
 * Principles (docs/security.md): an event category is written by its owner only (CATEGORY_OWNERS);
 * every identity receives replies only on its own inbox prefix (all under `_INBOX.`); a tenant
 * publishes only requests under `mesh.tenant.<id>.` and has no JetStream API at all (its inputs travel
 * inline, its outputs through the scheduler's task-output query); the operator runs commands and
 * reads the log but writes no event itself.
 */

/** Deliberately no `$JS.API.>` for services: only the JetStream API calls they make (found by running them under this table). */
export interface NatsPermissions {
  publish: { allow: string[]; deny: string[] };
  subscribe: { allow: string[]; deny: string[] };
  /**
   * Publish to the reply subject of a request received. False for every identity: nats-server tracks
   * each request's reply subject for it; services publish on `_INBOX.>` instead, where every
   * identity's inbox is (one static rule; the cost of either: BENCHMARKS.md, "Trust boundary").
   */
  allow_responses: boolean;
}

/**
 * What each service reads from the log, beyond the categories it writes:
 * - `durable`: categories it consumes with an `@OnEvents` durable consumer (the transport refuses any other);
 * - `live`: categories it follows with `store.subscribe` (ordered consumers) or reads whole with `readAll`.
 * Kept next to the code that does it (grep OnEvents, store.subscribe, readAll, VIEW_CATEGORIES in apps/).
 */
export const SERVICE_CONSUMES: Readonly<Record<ServiceName, { durable: readonly Category[]; live: readonly Category[]; readsWholeLog: boolean }>> = {
  scheduler: { durable: ['execution'], live: ['function', 'task', 'wallet', 'standing', 'node'], readsWholeLog: true },
  // node: each node's own drain requests (NodeDrainRequested, written by whichever node answered the operator).
  'container-manager': { durable: ['task', 'scaling', 'standing', 'node'], live: [], readsWholeLog: false },
  'credit-manager': { durable: ['usage', 'wallet'], live: ['function', 'meter'], readsWholeLog: true },
  scaler: { durable: ['container', 'usage', 'standing', 'node'], live: [], readsWholeLog: false },
  // The tenant feed (apps/ledger/src/tenant-feed) runs a durable consumer per category it republishes from.
  ledger: {
    durable: ['meter', 'wallet', 'function', 'task', 'execution', 'container', 'usage', 'scaling', 'standing'],
    live: ['wallet', 'function', 'task', 'container', 'execution'],
    readsWholeLog: true,
  },
};

/** Core NATS subjects (not persisted) each service publishes or subscribes to, besides requests and events. */
export const SERVICE_CORE_SUBJECTS: Readonly<Record<ServiceName, { publish: readonly string[]; subscribe: readonly string[] }>> = {
  scheduler: { publish: [], subscribe: [`${HEARTBEAT_PREFIX}.*`] },
  'container-manager': { publish: [`${HEARTBEAT_PREFIX}.*`], subscribe: [] },
  'credit-manager': { publish: [], subscribe: [] },
  scaler: { publish: [], subscribe: [`${HEARTBEAT_PREFIX}.*`] },
  // The tenant feed: a copy of each tenant's events on `mesh.tenant.<id>.events.<category>.<id>`.
  ledger: { publish: [`${TENANT_SUBJECT_PREFIX}.*.events.>`], subscribe: [] },
};

/**
 * Requests a service sends to another service (MeshClient inside a service). None today: a service
 * that gets one must be listed here, which also documents who may command whom.
 */
export const SERVICE_CALLS: Readonly<Record<ServiceName, readonly string[]>> = {
  scheduler: [],
  'container-manager': [],
  'credit-manager': [],
  scaler: [],
  ledger: [],
};

/** Further JetStream API calls, each with its reason (found by running the stack under this table: nats-server logs what it refuses). */
const SERVICE_JETSTREAM_EXTRA: Readonly<Record<ServiceName, readonly string[]>> = {
  // The storage guard sums every stream's bytes (STREAM.LIST: names and state, no messages).
  // (Its object buckets: SERVICE_OBJECT_STORES.)
  scheduler: ['$JS.API.STREAM.LIST'],
  'container-manager': [],
  'credit-manager': [],
  scaler: [],
  ledger: [],
};

/** KV and object store buckets each service opens (JetStream streams `KV_<bucket>` / `OBJ_<bucket>`). */
const SNAPSHOT_KV_BUCKET = 'mesh-snapshots';
const SERVICE_KV_BUCKETS: Readonly<Record<ServiceName, readonly string[]>> = {
  scheduler: [SNAPSHOT_KV_BUCKET],
  'container-manager': [],
  'credit-manager': [SNAPSHOT_KV_BUCKET],
  scaler: [],
  ledger: [SNAPSHOT_KV_BUCKET],
};

/** Categories a service writes: those it owns, plus its own dead-letter (and quarantine) records. */
export function categoriesWrittenBy(service: ServiceName): Category[] {
  return CATEGORIES.filter((c) => CATEGORY_OWNERS[c] === service || c === 'deadletter');
}

/** Throws unless `service` may run a durable consumer on `category` (SERVICE_CONSUMES): code and NATS config cannot drift. */
export function assertConsumes(service: ServiceName, category: string): void {
  const allowed = SERVICE_CONSUMES[service].durable as readonly string[];
  // `test` is the category reserved for the runtime's and store's own tests (any service may use it there).
  if (!allowed.includes(category) && category !== 'test') {
    throw new Error(
      `${service} may not start a durable consumer on category "${category}": SERVICE_CONSUMES in libs/contracts/src/permissions.ts lists ${allowed.join(', ') || 'none'} (add it there, then regenerate docs/security.md)`,
    );
  }
}

/**
 * Inboxes: every identity's under `_INBOX.` (services `_INBOX.svc.<service>`, the operator
 * `_INBOX.operator`, tenants `_INBOX.t.<tenantId>`), so a service answers a request by publishing on
 * `_INBOX.>` without allow_responses. A tenant's request is answered only on its own prefix
 * (libs/runtime/src/transport.ts replyAllowed).
 */
export const INBOX_ROOT = '_INBOX';
export const serviceInboxPrefix = (service: ServiceName) => `${INBOX_ROOT}.svc.${service}`;
export const OPERATOR_INBOX_PREFIX = `${INBOX_ROOT}.operator`;

const JS = '$JS.API';
/** JetStream API calls that read a stream (info, single messages, direct gets). */
const streamReads = (stream: string) => [
  `${JS}.STREAM.INFO.${stream}`,
  `${JS}.STREAM.MSG.GET.${stream}`,
  `${JS}.DIRECT.GET.${stream}`,
  `${JS}.DIRECT.GET.${stream}.>`,
];
/** Consumers on a stream: create (every API form of nats.js), info, next batch, delete (ordered consumers reset themselves). */
const consumerUse = (stream: string) => [
  `${JS}.CONSUMER.CREATE.${stream}`,
  `${JS}.CONSUMER.CREATE.${stream}.>`,
  `${JS}.CONSUMER.DURABLE.CREATE.${stream}.*`,
  `${JS}.CONSUMER.INFO.${stream}.*`,
  `${JS}.CONSUMER.MSG.NEXT.${stream}.*`,
  `${JS}.CONSUMER.DELETE.${stream}.*`,
];
/**
 * Leader leases of replicated services (libs/runtime/src/lease.ts): one key per service, named like
 * the service. Every replicated service opens the bucket and reads any key, but writes only its own.
 */
export const LEASE_BUCKET = 'mesh-leases';
/** Services that run replicas under a leader lease (the container-manager runs one per node instead). */
export const LEASED_SERVICES: readonly ServiceName[] = ['scheduler', 'ledger', 'credit-manager', 'scaler'];
/** Its own key, and the keys of its partitions (`<service>.p<i>`, docs/cluster.md "Partitions"). */
const leaseAccess = (service: ServiceName) =>
  LEASED_SERVICES.includes(service) ? [...bucketUse(`KV_${LEASE_BUCKET}`), `$KV.${LEASE_BUCKET}.${service}`, `$KV.${LEASE_BUCKET}.${service}.>`] : [];

/** Writing to a KV bucket also acks the publish through its stream (the JetStream publish is a request). */
const bucketUse = (streamName: string) => [
  ...streamReads(streamName),
  ...consumerUse(streamName),
  `${JS}.STREAM.CREATE.${streamName}`,
  `${JS}.STREAM.UPDATE.${streamName}`,
  `${JS}.STREAM.PURGE.${streamName}`,
];

/** What no service may do to the log: delete it, purge it, delete messages, or change its subjects. */
const EVENT_LOG_DESTRUCTION = [
  `${JS}.STREAM.DELETE.${EVENTS_STREAM}`,
  `${JS}.STREAM.PURGE.${EVENTS_STREAM}`,
  `${JS}.STREAM.MSG.DELETE.${EVENTS_STREAM}`,
  `${JS}.STREAM.UPDATE.${EVENTS_STREAM}`,
];

/**
 * The layout the table is generated for: with partitions the server checks a publish on its mapped
 * subject (`mesh.events.<category>.<id>.<p>`, measured on 2.9.10), so the owner's rule has a 5th token.
 */
export interface PermissionOptions {
  partitions?: number;
}

/**
 * The partition probe (subjects.ts PARTITION_PROBE_PREFIX): core NATS, never stored; every process
 * that reads or writes the log asks the server its layout at start.
 */
const PARTITION_PROBE = `${PARTITION_PROBE_PREFIX}.>`;

/** The permissions of one service's identity. */
export function servicePermissions(service: ServiceName, options: PermissionOptions = {}): NatsPermissions {
  const core = SERVICE_CORE_SUBJECTS[service];
  const partitioned = (options.partitions ?? 1) > 1;
  const publish = [
    ...categoriesWrittenBy(service).map((c) => (partitioned ? `${EVENTS_PREFIX}.${c}.*.*` : `${EVENTS_PREFIX}.${c}.*`)),
    PARTITION_PROBE,
    ...core.publish,
    ...SERVICE_CALLS[service],
    // Its own health request: the image's health check (infra/images/healthcheck.js) runs in the
    // service's container with the service's credentials and asks this subject.
    healthSubject(service),
    `${JS}.INFO`,
    ...SERVICE_JETSTREAM_EXTRA[service],
    // The store creates MESH_EVENTS when it is missing (first start); an existing one is only read.
    `${JS}.STREAM.CREATE.${EVENTS_STREAM}`,
    ...streamReads(EVENTS_STREAM),
    ...consumerUse(EVENTS_STREAM),
    // Acks of its durable consumers' messages and flow control of its ordered consumers.
    `$JS.ACK.${EVENTS_STREAM}.>`,
    '$JS.FC.>',
    ...SERVICE_KV_BUCKETS[service].flatMap((b) => [...bucketUse(`KV_${b}`), `$KV.${b}.>`]),
    ...(SERVICE_OBJECT_STORES[service] ? objectStoreAccess() : []),
    ...leaseAccess(service),
    // Answers to requests: every identity's inbox is under `_INBOX.` (no allow_responses, see NatsPermissions).
    `${INBOX_ROOT}.>`,
  ];
  const subscribe = [`${serviceInboxPrefix(service)}.>`, PARTITION_PROBE, ...core.subscribe, ...requestSubjectsAnsweredBy(service)];
  return { publish: { allow: unique(publish), deny: EVENT_LOG_DESTRUCTION }, subscribe: { allow: unique(subscribe), deny: [] }, allow_responses: false };
}

/**
 * Services that use every owner's object buckets (`mesh-input-<owner>`, `mesh-output-<owner>`, and
 * the older per-function/shared ones): the container-manager reads inputs and writes outputs; the
 * scheduler stores a tenant's inline input too large for an event (creating the bucket when missing)
 * and reads outputs for the task-output query. Tenants have no JetStream access, so these two
 * services are the only way objects reach a tenant.
 */
const SERVICE_OBJECT_STORES: Readonly<Record<ServiceName, boolean>> = {
  scheduler: true,
  'container-manager': true,
  'credit-manager': false,
  scaler: false,
  ledger: false,
};

/**
 * Bucket names are not known in advance, so object streams are allowed by the `$O.` subjects and a
 * JetStream API wildcard on the stream name (a subject token cannot be matched by prefix). Streams
 * named like that belong to nobody else.
 */
function objectStoreAccess(): string[] {
  return [
    '$O.>',
    `${JS}.STREAM.NAMES`,
    `${JS}.STREAM.INFO.*`,
    `${JS}.STREAM.CREATE.*`,
    `${JS}.STREAM.UPDATE.*`,
    `${JS}.STREAM.MSG.GET.*`,
    `${JS}.STREAM.PURGE.*`,
    `${JS}.DIRECT.GET.*`,
    `${JS}.DIRECT.GET.*.>`,
    `${JS}.CONSUMER.CREATE.*`,
    `${JS}.CONSUMER.CREATE.*.>`,
    `${JS}.CONSUMER.DURABLE.CREATE.*.*`,
    `${JS}.CONSUMER.INFO.*.*`,
    `${JS}.CONSUMER.MSG.NEXT.*.*`,
    `${JS}.CONSUMER.DELETE.*.*`,
    '$JS.ACK.>',
  ];
}

/** Every subject a service answers: its request definitions (the runtime registers them), health and dead-letter replays. */
function requestSubjectsAnsweredBy(service: ServiceName): string[] {
  return [`mesh.api.${service}.>`, `mesh.query.${service}.>`, `${TENANT_SUBJECT_PREFIX}.*.api.${service}.>`, `${TENANT_SUBJECT_PREFIX}.*.query.${service}.>`];
}

/**
 * The operator: every command and query, the JetStream API (log reads, tail, buckets, snapshots), the
 * services' health and dead-letter replays; never a direct publish on `mesh.events.>`: fixes go
 * through commands, so every event still has its owner as its only writer.
 */
export function operatorPermissions(): NatsPermissions {
  return {
    publish: {
      allow: ['mesh.api.>', 'mesh.query.>', `${JS}.>`, '$JS.ACK.>', '$JS.FC.>', '$O.>', '$KV.>', PARTITION_PROBE],
      deny: [`${EVENTS_PREFIX}.>`, ...EVENT_LOG_DESTRUCTION],
    },
    subscribe: { allow: [`${OPERATOR_INBOX_PREFIX}.>`, `${TENANT_SUBJECT_PREFIX}.*.events.>`, `${HEARTBEAT_PREFIX}.*`, PARTITION_PROBE], deny: [] },
    allow_responses: false,
  };
}

/**
 * A tenant: requests only on its own `mesh.tenant.<id>.api.>`/`.query.>` (services answer only
 * `access: 'tenant'` definitions there and check ownership), replies only on its own inbox, and its
 * own live event feed. No JetStream API, no `$O.`/`$KV.`/`$JS.` subject at all: JetStream answers an
 * API request, a pull request (`CONSUMER.MSG.NEXT`) or a push consumer's deliveries on the subject
 * the requester names, from the server's own client, past every permission; MESH_EVENTS stores what
 * arrives on `mesh.events.>`, so any JetStream access let a tenant put bytes of its choice into the
 * log (docs/security.md). Inputs go inline in submit-task, outputs come through task-output.
 */
export function tenantPermissions(tenantId: string): NatsPermissions {
  return {
    publish: { allow: [`${TENANT_SUBJECT_PREFIX}.${tenantId}.api.>`, `${TENANT_SUBJECT_PREFIX}.${tenantId}.query.>`], deny: [] },
    subscribe: { allow: [`${tenantInboxPrefix(tenantId)}.>`, `${tenantEventsPrefix(tenantId)}.>`], deny: [] },
    allow_responses: false,
  };
}

/** The identities of a stack: the five services, the operator, and the tenants given. */
export type Identity = { kind: 'service'; name: ServiceName } | { kind: 'operator'; name: 'operator' } | { kind: 'tenant'; name: string; tenantId: string };

export function permissionsOf(identity: Identity, options: PermissionOptions = {}): NatsPermissions {
  if (identity.kind === 'service') return servicePermissions(identity.name, options);
  if (identity.kind === 'operator') return operatorPermissions();
  return tenantPermissions(identity.tenantId);
}

export function inboxPrefixOf(identity: Identity): string {
  if (identity.kind === 'service') return serviceInboxPrefix(identity.name);
  if (identity.kind === 'operator') return OPERATOR_INBOX_PREFIX;
  return tenantInboxPrefix(identity.tenantId);
}

/** Every service identity, in SERVICES order. */
export const serviceIdentities = (): Identity[] => SERVICES.map((name) => ({ kind: 'service', name }));

/** Subjects referenced for the docs (health and replay per service are under `mesh.api.<service>.>`). */
export const exampleAnsweredSubjects = (service: ServiceName) => [
  healthSubject(service),
  deadLetterReplaySubject(service, '<consumer>'),
  apiSubject(service, '<command>'),
];

function unique(subjects: string[]): string[] {
  return [...new Set(subjects)];
}
