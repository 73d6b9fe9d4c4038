import { InMemorySnapshotStore, SNAPSHOT_CHUNK_RAW_BYTES, SnapshotSchedule, decodeChunks, encodeSnapshot } from './snapshot-store';

describe('snapshot encoding', () => {
  it('splits records into chunks of at most the raw chunk size and decodes them back in order', () => {
    // Given records worth about three chunks of JSON
    const records = Array.from({ length: 600 }, (_, i) => ({ k: 'r', i, pad: 'x'.repeat(2500), money: (10n ** 30n + BigInt(i)).toString() }));
    // When they are encoded
    const encoded = encodeSnapshot(1, 99n, records);
    // Then they span several chunks and decode to the same records
    expect(encoded.chunks.length).toBeGreaterThanOrEqual(3);
    expect(encoded.bytes).toBeGreaterThan(2 * SNAPSHOT_CHUNK_RAW_BYTES);
    expect(decodeChunks(encoded.chunks)).toEqual(records);
  });

  it('refuses a record larger than a chunk, naming it', () => {
    expect(() => encodeSnapshot(1, 1n, [{ k: 'ok' }, { k: 'big', pad: 'x'.repeat(SNAPSHOT_CHUNK_RAW_BYTES) }])).toThrow(/record 1 is \d+ bytes; the limit is/);
  });
});

describe('in-memory snapshot store', () => {
  it('loads what was saved, and says why not for a missing key, another schema version or a damaged chunk', async () => {
    const store = new InMemorySnapshotStore();
    await store.save('svc.a.view', encodeSnapshot(2, 7n, [{ k: 'head' }]));
    const loaded = await store.load('svc.a.view', 2);
    expect(loaded.ok && loaded.snapshot.position).toBe(7n);
    expect(await store.load('svc.b.view', 2)).toEqual({ ok: false, reason: 'no snapshot' });
    expect(await store.load('svc.a.view', 3)).toEqual({ ok: false, reason: 'schema version 2, this build reads 3' });
    store.entries.get('svc.a.view')!.chunks[0] = Buffer.from('garbage');
    const damaged = await store.load('svc.a.view', 2);
    expect(!damaged.ok && damaged.reason).toMatch(/sha256/);
  });

  it('refuses a key that is not dot-separated tokens', async () => {
    await expect(new InMemorySnapshotStore().save('bad key', encodeSnapshot(1, 1n, []))).rejects.toThrow(/snapshot key "bad key"/);
  });
});

describe('snapshot schedule', () => {
  it('is due after N events or T ms with events folded, never twice at once', async () => {
    // Given a schedule every 3 events or 1000 ms
    const schedule = new SnapshotSchedule(3, 1000, 0);
    // Then nothing is due without events, even late
    expect(schedule.due(5000)).toBe(false);
    schedule.folded(2);
    expect(schedule.due(10)).toBe(false);
    expect(schedule.due(1000)).toBe(true);
    schedule.folded();
    expect(schedule.due(10)).toBe(true);
    // When a write runs, no second one is due until it ends
    let finish!: () => void;
    const running = schedule.run(() => new Promise<void>((resolve) => (finish = resolve)));
    schedule.folded(5);
    expect(schedule.due()).toBe(false);
    finish();
    await running;
    expect(schedule.due()).toBe(true);
  });
});
