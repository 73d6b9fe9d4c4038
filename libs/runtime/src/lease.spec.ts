import { LeaseTerm, type LeaseRecord } from './lease';

const TTL_MS = 3000;
const a = { holder: 'scheduler-0/11/x', instance: 'scheduler-0' };
const b = { holder: 'scheduler-1/22/y', instance: 'scheduler-1' };
const heldBy = (who: { holder: string; instance: string }, extra: Partial<LeaseRecord> = {}): LeaseRecord => ({ ...who, ttlMs: TTL_MS, ...extra });

describe('LeaseTerm (leader lease rules, no I/O)', () => {
  it('given no key, when a replica looks, then it creates the key', () => {
    const term = new LeaseTerm(b, TTL_MS);
    term.observe({ revision: 0 }, 1000);
    expect(term.next(1000)).toEqual({ kind: 'create' });
    expect(term.isLeader(1000)).toBe(false);
  });

  it('given a live leader, when a standby looks before the lease time has passed since it saw the revision, then it waits', () => {
    const term = new LeaseTerm(b, TTL_MS);
    term.observe({ revision: 7, record: heldBy(a) }, 1000);
    term.observe({ revision: 7, record: heldBy(a) }, 3999);
    expect(term.next(3999)).toEqual({ kind: 'wait' });
  });

  it('given a leader that renews, when the standby sees each new revision, then its clock starts again and it keeps waiting', () => {
    const term = new LeaseTerm(b, TTL_MS);
    term.observe({ revision: 7, record: heldBy(a) }, 1000);
    term.observe({ revision: 8, record: heldBy(a) }, 3500);
    expect(term.next(6000)).toEqual({ kind: 'wait' });
    expect(term.next(6500)).toEqual({ kind: 'take', revision: 8 });
  });

  it('given a leader that stopped renewing, when the lease time has passed on the standby clock, then the standby takes the revision it saw', () => {
    const term = new LeaseTerm(b, TTL_MS);
    term.observe({ revision: 7, record: heldBy(a) }, 1000);
    expect(term.next(4000)).toEqual({ kind: 'take', revision: 7 });
  });

  it('given a lease released by a clean stop, when a standby looks, then it takes it at once', () => {
    const term = new LeaseTerm(b, TTL_MS);
    term.observe({ revision: 9, record: heldBy(a, { released: true }) }, 1000);
    expect(term.next(1000)).toEqual({ kind: 'take', revision: 9 });
  });

  it('given the key held by the previous process of this instance, when the restarted one looks, then it takes it at once', () => {
    const term = new LeaseTerm({ holder: 'scheduler-0/33/z', instance: 'scheduler-0' }, TTL_MS);
    term.observe({ revision: 4, record: heldBy(a) }, 1000);
    expect(term.next(1000)).toEqual({ kind: 'take', revision: 4 });
  });

  it('given a won write, then it leads until the lease time after it sent the write, and renews the revision it wrote', () => {
    const term = new LeaseTerm(a, TTL_MS);
    term.observe({ revision: 0 }, 1000);
    term.won(1, 1000);
    expect(term.isLeader(3999)).toBe(true);
    expect(term.next(2000)).toEqual({ kind: 'renew', revision: 1 });
    expect(term.isLeader(4000)).toBe(false);
  });

  it('given a leader and a standby on the same clock, when the leader stops renewing, then the leader stops leading before the standby may take over', () => {
    const leader = new LeaseTerm(a, TTL_MS);
    const standby = new LeaseTerm(b, TTL_MS);
    leader.won(5, 1000); // sent at 1000, written a little later
    standby.observe({ revision: 5, record: heldBy(a) }, 1010);
    for (let t = 1000; t < 6000; t += 1) {
      const mayTake = standby.next(t).kind === 'take';
      if (mayTake) expect(leader.isLeader(t)).toBe(false);
    }
    expect(standby.next(4010)).toEqual({ kind: 'take', revision: 5 });
  });

  it('given a leader, when it sees another revision (someone took it) or a write fails, then it no longer leads', () => {
    const seen = new LeaseTerm(a, TTL_MS);
    seen.won(5, 1000);
    seen.observe({ revision: 6, record: heldBy(b) }, 1500);
    expect(seen.isLeader(1500)).toBe(false);
    expect(seen.next(1500)).toEqual({ kind: 'wait' });

    const failed = new LeaseTerm(a, TTL_MS);
    failed.won(5, 1000);
    failed.lost();
    expect(failed.isLeader(1001)).toBe(false);
  });

  it('given a lease time out of bounds, then it refuses it naming the rule', () => {
    expect(() => new LeaseTerm(a, 100)).toThrow(/ttlMs: 100 is not an integer in 300\.\.60000/);
    expect(() => new LeaseTerm(a, 1.5)).toThrow(/ttlMs/);
  });
});
