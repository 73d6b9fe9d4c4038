import { isEvent, TestEvent } from '@mesh/contracts';
import { eventStoreContract } from '../../test/contract';
import { DuplicateEventError, EventStoreInvariantError } from '../errors';
import { InMemoryEventStore } from './in-memory-event-store';

// The same contract as the JetStream and KurrentDB adapters; every store opened shares one log.
let first: InMemoryEventStore | undefined;
eventStoreContract('memory', () => ({
  open: () => {
    const store = first ? first.connect() : (first = new InMemoryEventStore());
    return Promise.resolve(store);
  },
}));

describe('InMemoryEventStore beyond the contract', () => {
  it('given a stream whose revisions have a gap (history tampered with), then read throws an invariant error naming stream and revision', async () => {
    const store = new InMemoryEventStore();
    await store.append(
      'test-gap',
      [0, 1, 2].map((n) => ({ id: `gap-${n}`, type: 'TestEvent', data: { n } })),
      'no_stream',
    );
    store.log[1].revision = 5;
    const outcome = store.read('test-gap');
    await expect(outcome).rejects.toBeInstanceOf(EventStoreInvariantError);
    await expect(outcome).rejects.toMatchObject({ stream: 'test-gap', revision: 1 });
    await expect(outcome).rejects.toThrow('stream test-gap: revision 1 expected at index 1, found 5');
  });

  it('given an event id already used in another stream, then the append is refused as a duplicate', async () => {
    const store = new InMemoryEventStore();
    await store.append('test-d1', [{ id: 'dup-1', type: 'TestEvent', data: { n: 1 } }], 'no_stream');
    await expect(store.append('test-d2', [{ id: 'dup-1', type: 'TestEvent', data: { n: 1 } }], 'no_stream')).rejects.toBeInstanceOf(DuplicateEventError);
  });

  it('given a retried any-append, then it is not written twice', async () => {
    const store = new InMemoryEventStore();
    const batch = [{ id: 'any-1', type: 'TestEvent', data: { n: 1 } }];
    const first = await store.append('test-any', batch, 'any');
    await expect(store.append('test-any', batch, 'any')).resolves.toEqual(first);
    expect(await store.headPosition()).toBe(1n);
  });

  it('hands out copies: mutating what read returns leaves the log as it was', async () => {
    const store = new InMemoryEventStore();
    await store.append('test-copy', [{ id: 'copy-1', type: 'TestEvent', data: { n: 1 } }], 'no_stream');
    const [event] = await store.read('test-copy');
    if (!isEvent(event, TestEvent)) throw new Error(`expected a TestEvent, got ${event.type}`);
    event.data.n = 2;
    expect((await store.read('test-copy'))[0].data).toEqual({ n: 1 });
  });

  it('given data tampered into breaking its schema, then every read skips it as poison and readAll and subscribe report it, as JetStream does', async () => {
    const store = new InMemoryEventStore();
    await store.append(
      'test-poison',
      [1, 2, 3].map((n) => ({ id: `poison-${n}`, type: 'TestEvent', data: { n } })),
      'no_stream',
    );
    Object.assign(store.log[1].data as object, { n: 'two' });
    const expected = 'poison at position 2 on mesh.events.test.poison: TestEvent data breaks its schema: n:';
    // read: the stream without it (the gap is the poison's)
    expect((await store.read('test-poison')).map((e) => e.revision)).toEqual([0, 2]);
    // readAll: skipped, reported, the page refilled past it
    const reported: string[] = [];
    const page = await store.readAll({ from: 1n, limit: 2, onPoison: (p) => reported.push(p.toString()) });
    expect(page.map((e) => e.position)).toEqual([1n, 3n]);
    expect(reported).toEqual([expect.stringContaining(expected)]);
    // subscribe: not delivered, reported
    const delivered: bigint[] = [];
    const heard: string[] = [];
    let reachedNew: () => void = () => undefined;
    const newDelivered = new Promise<void>((resolve) => (reachedNew = resolve));
    const subscription = store.subscribe({ after: 0n, onPoison: (p) => heard.push(p.toString()) }, (e) => {
      delivered.push(e.position);
      if (e.position === 4n) reachedNew();
    });
    await store.append('test-poison', [{ id: 'poison-4', type: 'TestEvent', data: { n: 4 } }], 2);
    await newDelivered;
    await subscription.stop();
    expect(delivered).toEqual([1n, 3n, 4n]);
    expect(heard).toEqual([expect.stringContaining(expected)]);
  });
});
