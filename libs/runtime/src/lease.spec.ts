import { LeaseTerm, instanceIndex, isHomePartition, type LeaseRecord } from './lease';

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

  describe('partitions: a home replica takes its partition back', () => {
    const home = { ...b, home: true };

    it('given its partition held by a live replica not at home, when the home replica looks, then it preempts at once but acts only a whole lease after it sent the take', () => {
      const term = new LeaseTerm(home, TTL_MS);
      term.observe({ revision: 7, record: heldBy(a) }, 1000);
      expect(term.next(1000)).toEqual({ kind: 'take', revision: 7, preempt: true });
      term.won(8, 1000, 'preempt');
      expect(term.isLeader(1000)).toBe(false);
      expect(term.holds(1000)).toBe(true);
      expect(term.next(1500)).toEqual({ kind: 'renew', revision: 8 });
      // A renewal keeps the activation of the preemption.
      term.won(9, 2000, 'renew');
      expect(term.isLeader(3999)).toBe(false);
      expect(term.isLeader(4000)).toBe(true);
      expect(term.record()).toMatchObject({ home: true });
    });

    it('given the replaced holder, when it stops renewing, then it has stopped leading before the home replica acts', () => {
      const old = new LeaseTerm(a, TTL_MS);
      const term = new LeaseTerm(home, TTL_MS);
      old.won(7, 900); // its last confirmed renewal, sent at 900
      term.observe({ revision: 7, record: heldBy(a) }, 950);
      term.won(8, 1000, 'preempt'); // written after revision 7 (a compare-and-set on it)
      old.observe({ revision: 8, record: heldBy(home, { home: true }) }, 1900);
      for (let t = 1000; t < 6000; t++) if (term.isLeader(t)) expect(old.isLeader(t)).toBe(false);
      expect(old.next(1900)).toEqual({ kind: 'wait' });
    });

    it('given its partition held by another replica at home (a misconfiguration), when it looks, then it waits: two homes do not flap', () => {
      const term = new LeaseTerm(home, TTL_MS);
      term.observe({ revision: 7, record: heldBy(a, { home: true }) }, 1000);
      expect(term.next(1000)).toEqual({ kind: 'wait' });
    });

    it('given an expired holding, when a home replica preempts, then the old holding does not make it active early', () => {
      const term = new LeaseTerm(home, TTL_MS);
      term.won(3, 0); // held long ago, lapsed at 3000
      term.observe({ revision: 7, record: heldBy(a) }, 10_000);
      expect(term.next(10_000)).toEqual({ kind: 'take', revision: 7, preempt: true });
      term.won(8, 10_000, 'preempt');
      term.won(9, 11_000, 'renew');
      expect(term.isLeader(12_999)).toBe(false);
      expect(term.isLeader(13_000)).toBe(true);
    });

    it('given instance names, then partition p is at home on the replica whose index is p modulo the replicas', () => {
      expect([instanceIndex('ledger'), instanceIndex('ledger-1'), instanceIndex('ledger-12'), instanceIndex('ledger-x')]).toEqual([0, 1, 12, 0]);
      const homes = (instance: string) => [0, 1, 2, 3].filter((p) => isHomePartition(p, instance, 2));
      expect(homes('ledger')).toEqual([0, 2]);
      expect(homes('ledger-1')).toEqual([1, 3]);
      // Swarm's task slots start at 1: slot 2 is index 0 modulo 2.
      expect(homes('ledger-2')).toEqual([0, 2]);
    });
  });

  it('given a lease time out of bounds, then it refuses it naming the rule', () => {
    expect(() => new LeaseTerm(a, 100)).toThrow(/ttlMs: 100 is not an integer in 300\.\.60000/);
    expect(() => new LeaseTerm(a, 1.5)).toThrow(/ttlMs/);
  });
});
