import { isEvent, UsageDebited, type RecordedEvent } from '@mesh/contracts';
import { balanceDelta } from '@mesh/audit';

export interface CostView {
  walletId?: string;
  functionId?: string;
  currency: string;
  total: bigint;
  charges: number;
  /** containerId -> cost (for a task) or taskId -> cost (for a container). */
  parts: Map<string, { total: bigint; charges: number }>;
}

/** Which cost a view sums: per task (parts by container) or per container (parts by task). */
export type CostKind = 'task' | 'container';

/** A container's charges without a task are summed under this part. */
export const NO_TASK = '(no task)';

/** Cost views kept in memory per kind; beyond it the least recently used is dropped (and read back from its wallet's stream on demand). */
export const COST_VIEWS_IN_MEMORY = 50_000;

/**
 * The cost per task or per container, as a bounded cache of COMPLETE views: a view held here sums
 * every UsageDebited of its key up to the projection's position, so it can answer on its own. Views
 * are never in the snapshot (they grow with the log; a start from the snapshot would grow with it).
 *
 * A view is only ever created when it is known to be complete: while the projection has folded the
 * log from its start and nothing was dropped yet (`fromGenesis`), a key not held has no debit so
 * far; otherwise a key not held may have older debits, so a debit of it is not folded here and the
 * query reads the key's debits back from its wallet's stream (LedgerQueries) and puts the result in
 * with `put`. Pure: no I/O.
 */
export class CostViews {
  private readonly views = new Map<string, CostView>();
  /** True while every debit since the log's start has been folded here and no view was dropped. */
  fromGenesis = true;

  constructor(
    readonly kind: CostKind,
    readonly max = COST_VIEWS_IN_MEMORY,
  ) {}

  get size(): number {
    return this.views.size;
  }

  /** The view of `key` if held (it is then complete), marking it recently used. */
  get(key: string): CostView | undefined {
    const view = this.views.get(key);
    if (view) {
      this.views.delete(key);
      this.views.set(key, view);
    }
    return view;
  }

  /** Folds one debit of `key` (in log order). */
  add(key: string, part: string, amount: bigint, walletId: string, functionId: string | undefined, currency: string): void {
    let view = this.get(key);
    if (!view) {
      if (!this.fromGenesis) return; // older debits of it may exist: left to the read on demand
      view = emptyView(walletId, functionId, currency);
      this.set(key, view);
    }
    addTo(view, part, amount);
  }

  /** Puts a complete view (read back from the wallet's stream up to the projection's current state). */
  put(key: string, view: CostView): void {
    this.set(key, view);
  }

  /** Takes over the views and mode of `other`. */
  replaceWith(other: CostViews): void {
    this.views.clear();
    for (const [k, v] of other.views) this.views.set(k, v);
    this.fromGenesis = other.fromGenesis;
  }

  private set(key: string, view: CostView): void {
    this.views.delete(key);
    this.views.set(key, view);
    if (this.views.size > this.max) {
      const oldest = this.views.keys().next();
      if (!oldest.done) this.views.delete(oldest.value);
      // A key dropped now may get a debit later: from here on, an unknown key is not a new one.
      this.fromGenesis = false;
    }
  }
}

/** The part a debit is summed under in a view of `kind`, or undefined when the debit is not one of `key`. */
export function debitPart(kind: CostKind, key: string, data: { containerId: string; taskId?: string }): string | undefined {
  if (kind === 'task') return data.taskId === key ? data.containerId : undefined;
  return data.containerId === key ? (data.taskId ?? NO_TASK) : undefined;
}

/**
 * The view of `key` folded from the events of one wallet stream (in order; e.g. the wallet of the
 * task or container): the same sums, counts and part order as the live fold, as every debit of a
 * task or container is in its one wallet's stream. undefined when none of the events is one of its debits.
 */
export function costViewOf(kind: CostKind, key: string, events: readonly RecordedEvent[]): CostView | undefined {
  let view: CostView | undefined;
  for (const event of events) {
    // An event naming another wallet than its stream's is a forged copy: the live fold skips it too (LedgerProjection.apply).
    if (!isEvent(event, UsageDebited) || event.stream !== `wallet-${event.data.walletId}`) continue;
    const part = debitPart(kind, key, event.data);
    if (part === undefined) continue;
    view ??= emptyView(event.data.walletId, event.data.functionId, event.data.currency);
    addTo(view, part, -balanceDelta(event));
  }
  return view;
}

function emptyView(walletId: string, functionId: string | undefined, currency: string): CostView {
  return { walletId, functionId, currency, total: 0n, charges: 0, parts: new Map() };
}

function addTo(view: CostView, part: string, amount: bigint): void {
  view.total += amount;
  view.charges++;
  const p = view.parts.get(part) ?? { total: 0n, charges: 0 };
  p.total += amount;
  p.charges++;
  view.parts.set(part, p);
}
