import { OPERATOR_OWNER, parseStreamName, type RecordedEvent } from '@mesh/contracts';

/**
 * Who owns an event, for the tenant feed (docs/ledger.md, "Tenant feed"). Pure: no I/O.
 *
 * Only three kinds of event name their owner: WalletOpened, FunctionDeployed and TaskSubmitted
 * carry the tenant id of the caller that created the resource (absent: the operator's). Every other
 * event of a tenant belongs to one of its wallets or tasks and names that wallet or task in its data,
 * so its owner is the owner recorded when that wallet or task was created:
 *
 *   wallet-<w>                  WalletOpened: its tenantId; the rest: the owner of wallet w
 *   function-<f>                FunctionDeployed: its tenantId
 *   task-<t>                    TaskSubmitted: its tenantId; the rest: the owner of task t
 *   execution-<e>               the owner of its task (data.taskId)
 *   container-, usage-, scaling-<containerId>, standing-<w>, meter charges: the owner of data.walletId
 *   node-, meter-plan_<p>, deadletter-, test-, an anomaly of an unknown container: nobody's (operator)
 */
export type OwnerRef =
  /** The owner is known from the event itself: a tenant id or OPERATOR_OWNER. */
  | { kind: 'owner'; owner: string }
  /** The owner of the wallet (WalletOpened.data.tenantId of `wallet-<id>`). */
  | { kind: 'wallet'; id: string }
  /** The owner of the task (TaskSubmitted.data.tenantId of `task-<id>`). */
  | { kind: 'task'; id: string }
  /** An operator resource (nodes, price plans, dead letters): never on a tenant's feed. */
  | { kind: 'none' };

/** The owner of a creating event's resource: its tenantId, or OPERATOR_OWNER when absent. */
const created = (data: unknown): OwnerRef => ({ kind: 'owner', owner: stringField(data, 'tenantId') ?? OPERATOR_OWNER });

const NONE: OwnerRef = Object.freeze({ kind: 'none' });

/** Where the owner of `event` is found (see OwnerRef). The event is a validated RecordedEvent, so the fields named exist. */
export function ownerRefOf(event: Pick<RecordedEvent, 'type' | 'stream' | 'data'>): OwnerRef {
  const { category } = parseStreamName(event.stream);
  const walletOf = (): OwnerRef => {
    const walletId = stringField(event.data, 'walletId');
    return walletId === undefined ? NONE : { kind: 'wallet', id: walletId };
  };
  const taskOf = (): OwnerRef => {
    const taskId = stringField(event.data, 'taskId');
    return taskId === undefined ? NONE : { kind: 'task', id: taskId };
  };
  switch (category) {
    case 'wallet':
      return event.type === 'WalletOpened' ? created(event.data) : walletOf();
    case 'function':
      return event.type === 'FunctionDeployed' ? created(event.data) : NONE;
    case 'task':
      return event.type === 'TaskSubmitted' ? created(event.data) : taskOf();
    case 'execution':
      return taskOf();
    case 'container':
    case 'usage':
    case 'scaling':
    case 'standing':
      return walletOf();
    case 'meter':
      // Charges and anomalies name the wallet (an anomaly of an unknown container names none); price plans are the operator's.
      return event.type === 'PricePlanSet' ? NONE : walletOf();
    default:
      return NONE;
  }
}

/**
 * The owner a stream's first event records, for the lookup of an owner that is no longer cached:
 * `wallet-<w>` starts with WalletOpened and `task-<t>` with TaskSubmitted. Undefined when the first
 * event is not the creating one (a damaged stream): the owner stays unknown and nothing is published.
 */
export function ownerOfFirstEvent(kind: 'wallet' | 'task', first: Pick<RecordedEvent, 'type' | 'data'>): string | undefined {
  const creating = kind === 'wallet' ? 'WalletOpened' : 'TaskSubmitted';
  if (first.type !== creating) return undefined;
  return stringField(first.data, 'tenantId') ?? OPERATOR_OWNER;
}

/** The tenant whose feed carries an event of `owner`, or undefined for the operator's (not republished). */
export const tenantOfOwner = (owner: string | undefined): string | undefined => (owner === undefined || owner === OPERATOR_OWNER ? undefined : owner);

function stringField(data: unknown, field: string): string | undefined {
  if (typeof data !== 'object' || data === null) return undefined;
  const value = (data as Record<string, unknown>)[field];
  return typeof value === 'string' ? value : undefined;
}
