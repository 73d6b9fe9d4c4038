import type { NewEvent } from '@mesh/contracts';
import { ConcurrencyError } from '@mesh/eventstore/errors';
import { InMemoryEventStore } from '@mesh/eventstore/memory/in-memory-event-store';
import type { AppendResult, ExpectedVersion } from '@mesh/eventstore/port';
import { appendWithLongRetry } from './append';

/** A store that does not answer its first `failures` appends (as NATS frozen or restarting), recording the ids it was asked to write. */
class UnansweringStore extends InMemoryEventStore {
  readonly attemptedIds: string[][] = [];
  constructor(private failures: number) {
    super();
  }
  override append(stream: string, events: NewEvent[], expected: ExpectedVersion): Promise<AppendResult> {
    this.attemptedIds.push(events.map((e) => e.id));
    if (this.failures-- > 0) return Promise.reject(new Error('TIMEOUT: the store did not answer'));
    return super.append(stream, events, expected);
  }
}

// Valid data: the in-memory store, like JetStream, skips an event whose data breaks its schema on read.
const sample = (seq: number): NewEvent => ({
  id: `c1-${seq}`,
  type: 'ResourceSampled',
  data: {
    sampleId: `c1-${seq}`,
    containerId: 'c1',
    nodeId: 'n1',
    walletId: 'w1',
    functionId: 'f1',
    seq,
    windowStartMs: 0,
    windowEndMs: 1000,
    cpuNanos: 1,
    memoryBytesAvg: 1,
    memoryBytesMax: 1,
    cpuLimitMillis: 500,
    memoryLimitBytes: 1024 ** 2,
    final: false,
  },
});

describe('appendWithLongRetry: a sample is retried with the same id until the store answers, within a time bound', () => {
  it('given a store that misses three appends, when a sample is appended, then it is retried with the same id and written once', async () => {
    const store = new UnansweringStore(3);
    await appendWithLongRetry(store, 'usage-c1', [sample(1)], 'no_stream', 60_000);
    expect(store.attemptedIds).toEqual([['c1-1'], ['c1-1'], ['c1-1'], ['c1-1']]);
    expect((await store.read('usage-c1')).map((e) => e.id)).toEqual(['c1-1']);
  });

  it('given a store that never answers, when the bound is exceeded, then the last failure is thrown and nothing is written', async () => {
    const store = new UnansweringStore(Number.MAX_SAFE_INTEGER);
    await expect(appendWithLongRetry(store, 'usage-c1', [sample(1)], 'no_stream', 1)).rejects.toThrow(/did not answer/);
    expect(await store.read('usage-c1')).toEqual([]);
  });

  it('given a conflict (another writer), when appended, then it is thrown at once without a retry', async () => {
    const store = new UnansweringStore(0);
    await store.append('usage-c1', [sample(1)], 'no_stream');
    await expect(appendWithLongRetry(store, 'usage-c1', [sample(2)], 'no_stream', 60_000)).rejects.toBeInstanceOf(ConcurrencyError);
    expect(store.attemptedIds).toHaveLength(2);
  });
});
