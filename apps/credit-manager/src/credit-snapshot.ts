import type { Logger } from '@nestjs/common';
import { functionSpecSchema, pricePlanSchema } from '@mesh/contracts';
import { RecordReader, type SnapshotRecord } from '@mesh/eventstore/snapshot-records';
import { encodeSnapshot, type EncodedSnapshot, type SnapshotStore } from '@mesh/eventstore/snapshot-store';
import type { MeterHandler } from './meter.handler';
import type { PricePlanView } from './price-plan.view';

/**
 * The credit-manager's snapshot (docs/credit-manager.md, "Start-up"): what it folds from the whole
 * log at start, i.e. the price plans, the functions and the task -> containers index of the charges
 * query. Records: `head`, `plan` (one plan's versions), `fn` (a function spec), `task` (the
 * containers that charged a task, least recently used first). The meter and standing caches are not
 * in it: they fill on demand from each container's / wallet's own stream, whatever the log's size.
 */

/** Bump when the records change: an older snapshot is then ignored (full replay), never misread. */
export const CREDIT_SNAPSHOT_SCHEMA = 1;
const WHAT = 'credit-manager snapshot';

function* recordsOf(plans: PricePlanView, meter: MeterHandler): Generator<SnapshotRecord> {
  yield { k: 'head' };
  for (const item of plans.contents()) yield 'plan' in item ? { k: 'plan', versions: item.plan } : { k: 'fn', spec: item.spec };
  for (const { taskId, containerIds } of meter.taskIndex()) yield { k: 'task', taskId, containerIds };
}

export function encodeCreditSnapshot(position: bigint, plans: PricePlanView, meter: MeterHandler): EncodedSnapshot {
  return encodeSnapshot(CREDIT_SNAPSHOT_SCHEMA, position, recordsOf(plans, meter));
}

/**
 * Checks every record of a snapshot, then folds them into `plans` and `meter`; throws (naming the
 * record and field) before changing anything when one is malformed.
 */
export function restoreCreditSnapshot(records: unknown[], plans: PricePlanView, meter: MeterHandler): void {
  const head = RecordReader.of(records[0], WHAT);
  if (head.kind !== 'head') throw head.error('k', 'must be head in the first record');
  const apply: (() => void)[] = [];
  for (const value of records.slice(1)) {
    const r = RecordReader.of(value, WHAT);
    switch (r.kind) {
      case 'plan':
        for (const [i, v] of r.array('versions').entries()) {
          const plan = pricePlanSchema.safeParse(v);
          if (!plan.success) throw r.error(`versions.${i}`, `must be a price plan: ${plan.error.issues[0]?.message}`);
          apply.push(() => plans.restore({ plan: plan.data }));
        }
        break;
      case 'fn': {
        const spec = functionSpecSchema.safeParse(r.record.spec);
        if (!spec.success) throw r.error('spec', `must be a function spec: ${spec.error.issues[0]?.message}`);
        apply.push(() => plans.restore({ spec: spec.data }));
        break;
      }
      case 'task': {
        const taskId = r.str('taskId');
        const containerIds = r.strings('containerIds');
        apply.push(() => containerIds.forEach((containerId) => meter.indexTask(taskId, containerId)));
        break;
      }
      default:
        throw r.error('k', 'is an unknown record kind');
    }
  }
  for (const f of apply) f();
}

/**
 * Restores the snapshot under `key` into `plans` and `meter` when usable and returns its position
 * (the caller replays the log after it); otherwise logs why and returns 0n (full replay).
 */
export async function restoreCreditState(
  snapshots: SnapshotStore | undefined,
  key: string,
  plans: PricePlanView,
  meter: MeterHandler,
  log: Pick<Logger, 'warn'>,
): Promise<bigint> {
  if (!snapshots) return 0n;
  const loaded = await snapshots.load(key, CREDIT_SNAPSHOT_SCHEMA).catch((err: unknown) => ({ ok: false as const, reason: `cannot read it: ${String(err)}` }));
  if (!loaded.ok) {
    log.warn(`snapshot ${key} not used (${loaded.reason}): replaying the whole log`);
    return 0n;
  }
  try {
    restoreCreditSnapshot(loaded.snapshot.records, plans, meter);
    return loaded.snapshot.position;
  } catch (err) {
    log.warn(`snapshot ${key} not used (${err instanceof Error ? err.message : String(err)}): replaying the whole log`);
    return 0n;
  }
}
