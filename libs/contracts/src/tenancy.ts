import { DomainError } from './errors';
import { ID_PATTERN } from './ids';
import type { RequestDefinition } from './define';

/**
 * Tenancy: who may ask what (docs/security.md).
 *
 * A caller is known from the NATS subject it was allowed to publish on, never from a body field:
 * - `mesh.api.<service>.<command>` / `mesh.query.<service>.<query>`: only the operator and the
 *   services have publish permission there, so a request on it comes from a trusted identity;
 * - `mesh.tenant.<tenantId>.api.<service>.<command>` (and `.query.`): a tenant's identity may publish
 *   only under its own `mesh.tenant.<tenantId>.>`, so the tenant id in the subject is the caller.
 * Only definitions with `access: 'tenant'` are answered on tenant subjects; everything else is
 * operator-only, enforced twice: NATS refuses the publish, and no service listens there.
 */
export const TENANT_SUBJECT_PREFIX = 'mesh.tenant';

/** The owner recorded for resources created by the operator (no tenant id in their events). */
export const OPERATOR_OWNER = 'operator';

/** Tenant ids that can never be created: they name something else. */
export const RESERVED_TENANT_IDS: ReadonlySet<string> = new Set([OPERATOR_OWNER, 'system', 'mesh', 'services']);

/** A tenant id: an id (subject-token safe) up to 64 characters, not reserved. */
export const TENANT_ID_MAX_LENGTH = 64;
export function tenantIdProblem(tenantId: string): string | undefined {
  if (!ID_PATTERN.test(tenantId) || tenantId.length > TENANT_ID_MAX_LENGTH) return `must match [A-Za-z0-9_-]{1,${TENANT_ID_MAX_LENGTH}}`;
  if (RESERVED_TENANT_IDS.has(tenantId)) return `"${tenantId}" is reserved`;
  return undefined;
}

export type Caller = { kind: 'operator' } | { kind: 'tenant'; tenantId: string };
export const OPERATOR: Caller = Object.freeze({ kind: 'operator' });

/** `operator` or `tenant alice`, for messages. */
export const describeCaller = (caller: Caller) => (caller.kind === 'operator' ? 'the operator' : `tenant ${caller.tenantId}`);

/** The owner a caller's new resources get: its tenant id, or `operator`. */
export const ownerOf = (caller: Caller) => (caller.kind === 'operator' ? OPERATOR_OWNER : caller.tenantId);

/** `mesh.api.ledger.balance` for tenant alice -> `mesh.tenant.alice.api.ledger.balance`. */
export function tenantSubject(tenantId: string, subject: string): string {
  if (!subject.startsWith('mesh.')) throw new Error(`not a mesh subject: ${subject}`);
  return `${TENANT_SUBJECT_PREFIX}.${tenantId}.${subject.slice('mesh.'.length)}`;
}

/** The queue subscription that answers every tenant's requests on `subject`: `mesh.tenant.*.<rest>`. */
export const tenantWildcardSubject = (subject: string) => tenantSubject('*', subject);

/** The caller of a request received on `subject` (the subject it was actually published on). */
export function callerOfSubject(subject: string): Caller {
  const prefix = `${TENANT_SUBJECT_PREFIX}.`;
  if (!subject.startsWith(prefix)) return OPERATOR;
  const tenantId = subject.slice(prefix.length).split('.', 1)[0];
  return { kind: 'tenant', tenantId };
}

/** The subject a caller publishes a request of `definition` on. */
export function requestSubjectFor(definition: Pick<RequestDefinition, 'subject'>, tenantId?: string): string {
  return tenantId === undefined ? definition.subject : tenantSubject(tenantId, definition.subject);
}

/**
 * The live feed of one tenant's events: `mesh.tenant.<tenantId>.events.<category>.<id>` carries a
 * copy of every event of the tenant's wallets, functions, tasks, containers and executions
 * (republished by the ledger's tenant feed). A tenant may subscribe only under its own prefix.
 */
export const tenantEventsPrefix = (tenantId: string) => `${TENANT_SUBJECT_PREFIX}.${tenantId}.events`;
export const tenantEventSubject = (tenantId: string, category: string, id: string) => `${tenantEventsPrefix(tenantId)}.${category}.${id}`;

/**
 * Inbox prefix of a tenant's connections: replies to its requests are delivered only there. Under
 * `_INBOX.` like every identity's, so services answer by publishing on `_INBOX.>` (permissions.ts).
 */
export const tenantInboxPrefix = (tenantId: string) => `_INBOX.t.${tenantId}`;

/** Object store buckets per owner (tenant id or `operator`): inputs the owner uploads, outputs its tasks write. */
export const inputBucketOf = (owner: string) => `mesh-input-${owner}`;
export const outputBucketOf = (owner: string) => `mesh-output-${owner}`;

/** A refusal because the caller may not act on what it names: `forbidden: tenant bob may not read wallet alice`. */
export class ForbiddenError extends DomainError {
  constructor(message: string) {
    super('forbidden', message.startsWith('forbidden: ') ? message : `forbidden: ${message}`);
    this.name = 'ForbiddenError';
  }

  /** `ForbiddenError.of(caller, 'read', 'wallet alice')` -> `forbidden: tenant bob may not read wallet alice`. */
  static of(caller: Caller, verb: string, what: string): ForbiddenError {
    return new ForbiddenError(`${describeCaller(caller)} may not ${verb} ${what}`);
  }
}

/**
 * Throws ForbiddenError unless `caller` owns a resource whose recorded owner is `owner` (a tenant id,
 * or undefined / `operator` for the operator's own). The operator may act on everything.
 */
export function assertOwns(caller: Caller, owner: string | undefined, verb: string, what: string): void {
  if (caller.kind === 'operator') return;
  if ((owner ?? OPERATOR_OWNER) !== caller.tenantId) throw ForbiddenError.of(caller, verb, what);
}

/** Throws ForbiddenError unless the caller is the operator (defence in depth behind NATS permissions). */
export function assertOperator(caller: Caller, verb: string, what: string): void {
  if (caller.kind !== 'operator') throw ForbiddenError.of(caller, verb, what);
}
