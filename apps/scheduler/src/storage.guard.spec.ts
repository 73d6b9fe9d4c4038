import { storageVerdict, type StorageMeasure } from './storage.guard';

const MiB = 1024 ** 2;
const measure = (m: Partial<StorageMeasure>): StorageMeasure => ({
  usedBytes: 0,
  accountLimitBytes: -1,
  configuredCapacityBytes: 0,
  filesystem: null,
  measuredAtMs: 1,
  ...m,
});

describe('storageVerdict', () => {
  it('given the store below the threshold, when measured, then new work is accepted', () => {
    const s = storageVerdict(measure({ usedBytes: 50 * MiB, configuredCapacityBytes: 100 * MiB }), 90);
    expect(s).toMatchObject({ refusing: false, usedPct: 50, capacityBytes: 100 * MiB, capacitySource: 'configured' });
    expect(s.reason).toBeUndefined();
  });

  it('given the store above the threshold, when measured, then new work is refused naming the usage and the threshold', () => {
    const s = storageVerdict(measure({ usedBytes: 95 * MiB, configuredCapacityBytes: 100 * MiB }), 90);
    expect(s.refusing).toBe(true);
    expect(s.reason).toContain('95%');
    expect(s.reason).toContain('STORAGE_REFUSE_ABOVE_PCT=90%');
  });

  it('given exactly the threshold, when measured, then it is still accepted (refused only above)', () => {
    expect(storageVerdict(measure({ usedBytes: 90, configuredCapacityBytes: 100 }), 90).refusing).toBe(false);
    expect(storageVerdict(measure({ usedBytes: 0, configuredCapacityBytes: 100 }), 0).refusing).toBe(false);
  });

  it('given an account limit reported by JetStream, when measured, then it wins over the configured capacity', () => {
    const s = storageVerdict(measure({ usedBytes: 60, accountLimitBytes: 100, configuredCapacityBytes: 1000 }), 50);
    expect(s).toMatchObject({ capacityBytes: 100, capacitySource: 'account-limit', usedPct: 60, refusing: true });
  });

  it('given no capacity at all, when measured, then only the filesystem counts', () => {
    const unknown = storageVerdict(measure({ usedBytes: 10 ** 12 }), 90);
    expect(unknown).toMatchObject({ capacityBytes: null, capacitySource: 'none', usedPct: null, refusing: false });
    const full = storageVerdict(measure({ usedBytes: 1, filesystem: { path: '/store', totalBytes: 100 * MiB, availableBytes: 5 * MiB } }), 90);
    expect(full.refusing).toBe(true);
    expect(full.filesystem?.usedPct).toBe(95);
    expect(full.reason).toContain('/store');
  });
});
