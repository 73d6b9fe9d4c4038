import { DomainError, GRC, currencyOf, formatAmount, isEventOf, streamName, walletEvents, type ReplyData, type StatementLine } from '@mesh/contracts';
import type { balanceRequest, containerCostRequest, providerEarningsRequest, statementRequest, taskCostRequest, totalsRequest } from '@mesh/contracts';
import type { EventStore } from '@mesh/eventstore/port';
import { NO_TASK, costViewOf, type CostKind, type CostView, type CostViews } from './cost-views';
import { STATEMENT_LINES_IN_MEMORY, toStatementLine, type LedgerProjection, type WalletView } from './ledger-projection';

/** Default and ceiling of statement lines per answer. */
export const STATEMENT_LIMIT_DEFAULT = 100;
export const STATEMENT_LIMIT_MAX = 1000;
/**
 * Bytes of statement lines per answer: a NATS reply must fit in the server's max_payload (1 MiB by
 * default). A provider's credit lines list every charge of the credit (up to 200), and adjustment
 * reasons run to 1 KiB, so 1000 lines may not fit: the answer then holds fewer and says so.
 */
export const STATEMENT_BYTES_MAX = 512 * 1024;
/** Reads of a wallet's stream to reach the revision the projection has folded (a cost read back on demand). */
const COST_READ_ATTEMPTS_MAX = 3;

/**
 * Answers of the audit projections, shared by the NATS queries and the HTTP server. Every answer
 * carries `position`: the last log position the projection had folded in.
 */
export class LedgerQueries {
  constructor(
    private readonly projection: LedgerProjection,
    private readonly store: EventStore,
  ) {}

  balance(walletId: string): ReplyData<typeof balanceRequest> {
    const w = this.projection.wallet(walletId);
    const c = currencyOf(w.currency);
    return {
      walletId,
      kind: w.kind,
      currency: w.currency,
      balance: formatAmount(w.balance, c),
      available: formatAmount(w.balance > 0n ? w.balance : 0n, c),
      debt: formatAmount(w.balance < 0n ? -w.balance : 0n, c),
      maxDebt: formatAmount(w.maxDebt, c),
      minBalance: formatAmount(w.minBalance, c),
      policy: w.policy,
      revision: w.revision,
      position: this.projection.position.toString(),
    };
  }

  async statement(walletId: string, limit = STATEMENT_LIMIT_DEFAULT, afterRevision?: number): Promise<ReplyData<typeof statementRequest>> {
    const position = this.projection.position.toString();
    const w = this.projection.wallet(walletId);
    const count = Math.min(Math.max(1, limit), STATEMENT_LIMIT_MAX);
    const total = w.revision + 1;
    const from = afterRevision === undefined ? Math.max(0, total - count) : afterRevision + 1;
    const to = Math.min(total, from + count); // exclusive
    let lines: StatementLine[] = [];
    if (from < to) {
      const firstInMemory = w.lines.length ? w.lines[0].revision : total;
      if (from >= firstInMemory) {
        lines = w.lines.slice(from - firstInMemory, to - firstInMemory);
      } else {
        // Older than the in-memory window: read them back from the wallet's stream (the store reads
        // it whole whatever the revision asked), and keep the ones just older than the window in
        // memory, up to its cap: after a start from the snapshot (100 lines per wallet), the first
        // longer statement of a wallet pays the read, not every one.
        const room = Math.max(0, STATEMENT_LINES_IN_MEMORY - w.lines.length);
        const events = await this.store.read(streamName('wallet', walletId), Math.min(from, Math.max(0, firstInMemory - room)));
        const read = events.flatMap((e) => (isEventOf(e, walletEvents) ? [toStatementLine(e)] : []));
        lines = read.filter((l) => l.revision >= from && l.revision < to);
        keepOlderLines(w, read);
      }
    }
    const fitted = withinBytes(lines, STATEMENT_BYTES_MAX, afterRevision === undefined ? 'newest' : 'oldest');
    return {
      walletId,
      currency: w.currency,
      balance: formatAmount(w.balance, currencyOf(w.currency)),
      total,
      lines: fitted,
      truncated: fitted.length < lines.length,
      position,
    };
  }

  async taskCost(taskId: string): Promise<ReplyData<typeof taskCostRequest>> {
    const view = await this.costView(this.projection.tasks, taskId);
    const currency = currencyOf(view?.currency ?? GRC.code);
    return {
      taskId,
      ...(view?.walletId ? { walletId: view.walletId } : {}),
      currency: currency.code,
      total: formatAmount(view?.total ?? 0n, currency),
      charges: view?.charges ?? 0,
      containers: [...(view?.parts ?? [])].map(([containerId, p]) => ({ containerId, total: formatAmount(p.total, currency), charges: p.charges })),
      position: this.projection.position.toString(),
    };
  }

  async containerCost(containerId: string): Promise<ReplyData<typeof containerCostRequest>> {
    const view = await this.costView(this.projection.containers, containerId);
    const currency = currencyOf(view?.currency ?? GRC.code);
    return {
      containerId,
      ...(view?.walletId ? { walletId: view.walletId } : {}),
      ...(view?.functionId ? { functionId: view.functionId } : {}),
      currency: currency.code,
      total: formatAmount(view?.total ?? 0n, currency),
      charges: view?.charges ?? 0,
      tasks: [...(view?.parts ?? [])].filter(([taskId]) => taskId !== NO_TASK).map(([taskId, p]) => ({ taskId, total: formatAmount(p.total, currency) })),
      position: this.projection.position.toString(),
    };
  }

  /**
   * The complete cost view of a task or container at the projection's position: from memory when
   * held (CostViews), else read back from the stream of the wallet that paid it (found in the task's
   * or container's own stream, whose events name it), then held. Every debit of a task or container
   * is in that one wallet's stream, so the sums are exactly those of a fold of the whole log.
   */
  private async costView(views: CostViews, key: string): Promise<CostView | undefined> {
    const held = views.get(key);
    if (held || views.fromGenesis) return held; // from the log's start and nothing dropped: a key not held has no debit
    const walletId = await this.payerOf(views.kind, key);
    const wallet = walletId === undefined ? undefined : this.projection.wallets.get(walletId);
    if (!wallet) return undefined;
    const stream = streamName('wallet', wallet.walletId);
    const events = await this.store.read(stream);
    // The stream as read must reach the revision the projection has folded by now (it normally
    // does: the projection follows the store); events beyond it are left for the live fold.
    for (let attempt = 0; attempt < COST_READ_ATTEMPTS_MAX && lastRevision(events) < wallet.revision; attempt++) {
      events.push(...(await this.store.read(stream, lastRevision(events) + 1)));
    }
    if (lastRevision(events) < wallet.revision) {
      throw new Error(`${views.kind} ${key}: wallet ${wallet.walletId} read up to revision ${lastRevision(events)}, the projection is at ${wallet.revision}`);
    }
    const view = costViewOf(
      views.kind,
      key,
      events.filter((e) => e.revision <= wallet.revision),
    );
    if (view) views.put(key, view); // complete up to the wallet's revision folded: the live fold goes on from there
    return view;
  }

  /** The wallet a task or container belongs to, from the first event of its own stream that names one (undefined: none). */
  private async payerOf(kind: CostKind, key: string): Promise<string | undefined> {
    // A container's stream is written by the container-manager; its charges (meter) also name the wallet.
    const streams = kind === 'task' ? [streamName('task', key)] : [streamName('container', key), streamName('meter', key)];
    for (const stream of streams) {
      for (const event of await this.store.read(stream)) {
        const walletId = (event.data as { walletId?: unknown } | undefined)?.walletId;
        if (typeof walletId === 'string') return walletId;
      }
    }
    return undefined;
  }

  providerEarnings(walletId?: string): ReplyData<typeof providerEarningsRequest> {
    const position = this.projection.position.toString();
    const wallets = walletId ? [this.projection.wallet(walletId)] : [...this.projection.wallets.values()].filter((w) => w.kind === 'provider');
    for (const w of wallets) {
      if (w.kind !== 'provider') throw new DomainError('wrong_wallet_kind', `wallet ${w.walletId} is a ${w.kind} wallet, not a provider wallet`);
    }
    return {
      providers: wallets.map((w) => {
        const c = currencyOf(w.currency);
        return { walletId: w.walletId, currency: w.currency, earned: formatAmount(w.earned, c), charges: w.credits, balance: formatAmount(w.balance, c) };
      }),
      position,
    };
  }

  totals(): ReplyData<typeof totalsRequest> {
    const p = this.projection;
    let user = 0n;
    let provider = 0n;
    let debt = 0n;
    let userWallets = 0;
    for (const w of p.wallets.values()) {
      if (w.kind === 'provider') provider += w.balance;
      else {
        userWallets++;
        user += w.balance;
        if (w.balance < 0n) debt -= w.balance;
      }
    }
    return {
      currency: GRC.code,
      wallets: p.wallets.size,
      userWallets,
      providerWallets: p.wallets.size - userWallets,
      deposited: formatAmount(p.totals.deposited),
      withdrawn: formatAmount(p.totals.withdrawn),
      adjusted: formatAmount(p.totals.adjusted),
      debited: formatAmount(p.totals.debited),
      credited: formatAmount(p.totals.credited),
      userBalances: formatAmount(user),
      providerBalances: formatAmount(provider),
      debt: formatAmount(debt),
      walletEvents: p.walletEvents,
      position: p.position.toString(),
    };
  }
}

/**
 * The lines that fit in `maxBytes` of JSON, keeping the `oldest` (paging forward with
 * afterRevision: the caller goes on after the last one) or the `newest` (the latest lines). At
 * least one line is kept, whatever its size (one credit line is at most ~150 KiB).
 */
function withinBytes(lines: StatementLine[], maxBytes: number, keep: 'oldest' | 'newest'): StatementLine[] {
  let bytes = 0;
  const ordered = keep === 'oldest' ? lines : [...lines].reverse();
  let count = 0;
  for (const line of ordered) {
    bytes += Buffer.byteLength(JSON.stringify(line)) + 1;
    if (bytes > maxBytes && count > 0) break;
    count++;
  }
  if (count === lines.length) return lines;
  return keep === 'oldest' ? lines.slice(0, count) : lines.slice(lines.length - count);
}

/**
 * Puts the lines of `read` just older than the wallet's in-memory lines in front of them, up to
 * STATEMENT_LINES_IN_MEMORY, when they join up (the read reached the revision before the first line
 * held; lines folded while it was read are already in memory). Otherwise memory is left as it is.
 */
function keepOlderLines(w: WalletView, read: readonly StatementLine[]): void {
  const first = w.lines.length ? w.lines[0].revision : w.revision + 1;
  const older = read.filter((l) => l.revision < first);
  const room = STATEMENT_LINES_IN_MEMORY - w.lines.length;
  if (room <= 0 || older.length === 0 || older[older.length - 1].revision !== first - 1) return;
  w.lines.unshift(...older.slice(-room));
}

function lastRevision(events: readonly { revision: number }[]): number {
  return events.length === 0 ? -1 : events[events.length - 1].revision;
}
