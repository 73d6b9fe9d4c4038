import { PendingPool } from './pending-pool';

/** Drains the pool the way the dispatch loop does: rounds over wallets, one head each. */
function drain(pool: PendingPool, max = 1000): string[] {
  const out: string[] = [];
  while (pool.size > 0 && out.length < max) {
    for (const walletId of pool.walletsInTurn()) {
      const head = pool.head(walletId)!;
      pool.remove(head.taskId);
      pool.served(walletId);
      out.push(head.taskId);
    }
  }
  return out;
}

describe('pending pool', () => {
  it('is FIFO per wallet, higher priority first', () => {
    const pool = new PendingPool();
    pool.add({ taskId: 'a', walletId: 'w', priority: 0, seq: 1 });
    pool.add({ taskId: 'b', walletId: 'w', priority: 5, seq: 2 });
    pool.add({ taskId: 'c', walletId: 'w', priority: 0, seq: 3 });
    pool.add({ taskId: 'd', walletId: 'w', priority: 5, seq: 4 });
    expect(drain(pool)).toEqual(['b', 'd', 'a', 'c']);
  });
  it("is fair across wallets: a thousand tasks of one wallet do not starve another wallet's one", () => {
    const pool = new PendingPool();
    for (let i = 0; i < 1000; i++) pool.add({ taskId: `big-${i}`, walletId: 'big', priority: 9, seq: i });
    pool.add({ taskId: 'small-0', walletId: 'small', priority: 0, seq: 5000 });
    expect(drain(pool).indexOf('small-0')).toBeLessThanOrEqual(1);
  });
  it('round-robin continues after the wallet served last', () => {
    const pool = new PendingPool();
    for (const w of ['x', 'y', 'z']) for (let i = 0; i < 2; i++) pool.add({ taskId: `${w}${i}`, walletId: w, priority: 0, seq: i });
    expect(drain(pool)).toEqual(['x0', 'y0', 'z0', 'x1', 'y1', 'z1']);
    pool.add({ taskId: 'a', walletId: 'x', priority: 0, seq: 10 });
    pool.add({ taskId: 'b', walletId: 'y', priority: 0, seq: 11 });
    pool.served('x');
    expect(pool.walletsInTurn()).toEqual(['y', 'x']);
  });
  it('a requeued task keeps its submission order; add and remove are idempotent', () => {
    const pool = new PendingPool();
    pool.add({ taskId: 'a', walletId: 'w', priority: 0, seq: 1 });
    pool.add({ taskId: 'b', walletId: 'w', priority: 0, seq: 2 });
    pool.remove('a');
    pool.add({ taskId: 'c', walletId: 'w', priority: 0, seq: 3 });
    pool.add({ taskId: 'a', walletId: 'w', priority: 0, seq: 1 }); // requeued
    pool.add({ taskId: 'a', walletId: 'w', priority: 0, seq: 1 }); // replayed twice
    expect(pool.size).toBe(3);
    expect(pool.remove('zzz')).toBe(false);
    expect(drain(pool)).toEqual(['a', 'b', 'c']);
  });
  it('removes from the middle of a queue (cancel) keeping the order of the rest', () => {
    const pool = new PendingPool();
    for (let i = 0; i < 50; i++) pool.add({ taskId: `t${i}`, walletId: 'w', priority: i % 3, seq: i });
    for (let i = 0; i < 50; i += 7) pool.remove(`t${i}`);
    const order = drain(pool);
    const expected = Array.from({ length: 50 }, (_, i) => i)
      .filter((i) => i % 7 !== 0)
      .sort((a, b) => (b % 3) - (a % 3) || a - b)
      .map((i) => `t${i}`);
    expect(order).toEqual(expected);
  });
});
