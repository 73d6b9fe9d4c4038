/**
 * The pending pool: one queue per wallet, ordered by priority (9 first) then by submission order
 * (FIFO); a requeued task keeps its original submission order, so it goes back near the front.
 * Wallets are served round-robin (`walletsInTurn`), so one wallet's thousand tasks never starve
 * another wallet's single task. Pure data structure, no I/O.
 */
export interface PoolEntry {
  taskId: string;
  walletId: string;
  priority: number;
  /** Submission order (stable across requeues and replays). */
  seq: number;
}

/** Binary heap: highest priority first, then lowest seq. */
class WalletQueue {
  private readonly heap: PoolEntry[] = [];

  get size(): number {
    return this.heap.length;
  }

  private static before(a: PoolEntry, b: PoolEntry): boolean {
    return a.priority !== b.priority ? a.priority > b.priority : a.seq < b.seq;
  }

  push(entry: PoolEntry): void {
    const h = this.heap;
    h.push(entry);
    let i = h.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!WalletQueue.before(h[i], h[parent])) break;
      [h[i], h[parent]] = [h[parent], h[i]];
      i = parent;
    }
  }

  peek(): PoolEntry | undefined {
    return this.heap[0];
  }

  /** Removes the entry of `taskId` (O(n) to find; cancels are rare). */
  remove(taskId: string): boolean {
    const h = this.heap;
    const i = h.findIndex((e) => e.taskId === taskId);
    if (i < 0) return false;
    const last = h.pop()!;
    if (i === h.length) return true;
    h[i] = last;
    this.siftDown(this.siftUp(i));
    return true;
  }

  /** Removes the head (O(log n)). */
  shift(): PoolEntry | undefined {
    const h = this.heap;
    if (h.length === 0) return undefined;
    const top = h[0];
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      this.siftDown(0);
    }
    return top;
  }

  entries(): readonly PoolEntry[] {
    return this.heap;
  }

  private siftUp(start: number): number {
    const h = this.heap;
    let i = start;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!WalletQueue.before(h[i], h[parent])) break;
      [h[i], h[parent]] = [h[parent], h[i]];
      i = parent;
    }
    return i;
  }

  private siftDown(start: number): void {
    const h = this.heap;
    let i = start;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < h.length && WalletQueue.before(h[l], h[m])) m = l;
      if (r < h.length && WalletQueue.before(h[r], h[m])) m = r;
      if (m === i) return;
      [h[i], h[m]] = [h[m], h[i]];
      i = m;
    }
  }
}

export class PendingPool {
  private readonly queues = new Map<string, WalletQueue>();
  private readonly walletOf = new Map<string, string>();
  /** The wallet served last; the next round starts after it. */
  private lastServed?: string;

  get size(): number {
    return this.walletOf.size;
  }

  has(taskId: string): boolean {
    return this.walletOf.has(taskId);
  }

  add(entry: PoolEntry): void {
    if (this.walletOf.has(entry.taskId)) return; // idempotent: a replayed event adds nothing twice
    let queue = this.queues.get(entry.walletId);
    if (!queue) this.queues.set(entry.walletId, (queue = new WalletQueue()));
    queue.push(entry);
    this.walletOf.set(entry.taskId, entry.walletId);
  }

  remove(taskId: string): boolean {
    const walletId = this.walletOf.get(taskId);
    if (walletId === undefined) return false;
    this.walletOf.delete(taskId);
    const queue = this.queues.get(walletId)!;
    const head = queue.peek();
    if (head?.taskId === taskId) queue.shift();
    else queue.remove(taskId);
    if (queue.size === 0) this.queues.delete(walletId);
    return true;
  }

  /** The task a wallet would dispatch next. */
  head(walletId: string): PoolEntry | undefined {
    return this.queues.get(walletId)?.peek();
  }

  pendingOf(walletId: string): number {
    return this.queues.get(walletId)?.size ?? 0;
  }

  /** Wallets with pending tasks, starting after the one served last (round-robin). */
  walletsInTurn(): string[] {
    const wallets = [...this.queues.keys()];
    const at = this.lastServed === undefined ? -1 : wallets.indexOf(this.lastServed);
    if (at < 0) {
      // The last served wallet emptied and left the map: keep order by starting from the next in insertion order.
      return wallets;
    }
    return [...wallets.slice(at + 1), ...wallets.slice(0, at + 1)];
  }

  served(walletId: string): void {
    this.lastServed = walletId;
  }

  wallets(): IterableIterator<[string, number]> {
    const sizes = [...this.queues].map(([w, q]) => [w, q.size] as [string, number]);
    return sizes[Symbol.iterator]();
  }

  entriesOf(walletId: string): readonly PoolEntry[] {
    return this.queues.get(walletId)?.entries() ?? [];
  }
}
