import { ForbiddenError, OPERATOR_OWNER, assertOwns, inputBucketOf, type Caller, type FunctionSpec, type TaskInput } from '@mesh/contracts';

/**
 * Who may act on what in the scheduler (docs/scheduler.md, "Who may call what"). The caller comes
 * from the subject the request arrived on (libs/contracts/src/tenancy.ts), never from a body field.
 * The operator may do everything; a tenant only acts on what it owns, and may use (and read) the
 * operator's functions, which are public. Pure: the handlers load the records and ask here.
 */

/** The owner a record names: its tenant id, or `operator` when it names none. */
export const recordOwner = (tenantId: string | undefined): string => tenantId ?? OPERATOR_OWNER;

/** The `tenantId` field a new record of `caller` carries: the tenant's id, nothing for the operator. */
export const ownerField = (caller: Caller): { tenantId?: string } => (caller.kind === 'tenant' ? { tenantId: caller.tenantId } : {});

/**
 * The spec a deploy by `caller` writes, or a ForbiddenError:
 * - a new function belongs to its deployer (`tenantId` from the caller; nothing for the operator);
 * - an existing one may be redeployed only by its owner or the operator, and keeps its owner (so the
 *   operator fixing a tenant's function does not take it over);
 * - price plans are assigned by the operator: a tenant may not name a plan (naming the one the
 *   function already has is no choice and passes), and its redeploy keeps the plan the function has.
 */
export function deployedSpec(caller: Caller, requested: Omit<FunctionSpec, 'version' | 'tenantId'>, existing?: FunctionSpec): Omit<FunctionSpec, 'version'> {
  const { pricePlanId: asked, ...rest } = requested;
  if (existing) assertOwns(caller, existing.tenantId, 'redeploy', `function ${requested.functionId}`);
  const owner = existing ? (existing.tenantId !== undefined ? { tenantId: existing.tenantId } : {}) : ownerField(caller);
  let pricePlanId = asked;
  if (caller.kind === 'tenant') {
    if (asked !== undefined && asked !== existing?.pricePlanId) {
      throw ForbiddenError.of(
        caller,
        'choose',
        `pricePlanId ${asked} for function ${requested.functionId}: price plans are assigned by the operator (leave pricePlanId out)`,
      );
    }
    pricePlanId = existing?.pricePlanId;
  }
  return { ...rest, ...(pricePlanId !== undefined ? { pricePlanId } : {}), ...owner };
}

/** A function `caller` may run and read: its own, or the operator's (public). The operator: every one. */
export function mayUseFunction(caller: Caller, fn: Pick<FunctionSpec, 'tenantId'>): boolean {
  return caller.kind === 'operator' || fn.tenantId === undefined || fn.tenantId === caller.tenantId;
}

/** Throws ForbiddenError unless `caller` may use `fn` (`verb`: run, read). */
export function assertMayUseFunction(caller: Caller, fn: Pick<FunctionSpec, 'functionId' | 'tenantId'>, verb: 'run' | 'read'): void {
  if (!mayUseFunction(caller, fn)) throw ForbiddenError.of(caller, verb, `function ${fn.functionId}`);
}

/**
 * A tenant's task input by reference must be in the tenant's own input bucket
 * (`mesh-input-<tenantId>`): any other bucket would let its task read another owner's objects. The
 * operator may name any bucket (its tools put inputs in per-function buckets).
 */
export function assertInputAllowed(caller: Caller, input: TaskInput): void {
  if (caller.kind === 'operator' || !('objectRef' in input)) return;
  const own = inputBucketOf(caller.tenantId);
  const { bucket } = input.objectRef;
  if (bucket !== own) throw ForbiddenError.of(caller, 'read', `bucket ${bucket}: a tenant's task input must be in its own input bucket ${own}`);
}

/** Throws ForbiddenError unless `caller` owns the task (its TaskSubmitted's tenantId; none: the operator's). */
export function assertOwnsTask(caller: Caller, task: { taskId: string; tenantId?: string }, verb: 'read' | 'cancel' | 'submit'): void {
  assertOwns(caller, task.tenantId, verb, `task ${task.taskId}`);
}

/** Whether `caller` sees a record owned by `tenantId` in a list (the operator sees all). */
export const owns = (caller: Caller, tenantId: string | undefined): boolean => caller.kind === 'operator' || recordOwner(tenantId) === caller.tenantId;
