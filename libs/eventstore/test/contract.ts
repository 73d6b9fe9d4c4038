import { randomUUID } from 'node:crypto';
import { ContractError, isEvent, TestEvent, type NewEvent, type RecordedEvent } from '@mesh/contracts';
import { eventually } from '@mesh/testing';
import { ConcurrencyError } from '../src/errors';
import type { EventStore } from '../src/port';

/**
 * The one contract every EventStore adapter passes (JetStream always; KurrentDB when a server is
 * configured). `restartServer` is given by adapters whose server the test controls.
 */
export interface ContractHarness {
  /** A new store on a new client connection (to act as another process). */
  open(): Promise<EventStore>;
  /** Stops and starts the server under an open store (same data). */
  restartServer?: () => Promise<void>;
}

const ev = (id: string, n: number): NewEvent => ({ id, type: 'TestEvent', data: { n } });
const uid = () => randomUUID().replace(/-/g, '').slice(0, 12);
const ids = (events: RecordedEvent[]) => events.map((e) => e.id);

export function eventStoreContract(name: string, harness: () => ContractHarness) {
  describe(`EventStore contract: ${name}`, () => {
    let h: ContractHarness;
    let store: EventStore;
    const opened: EventStore[] = [];
    const open = async () => {
      const s = await h.open();
      opened.push(s);
      return s;
    };

    beforeAll(async () => {
      h = harness();
      store = await open();
    });
    afterAll(async () => {
      for (const s of opened) await s.close().catch(() => undefined);
    });

    it('appends to a new stream and reads it back with revisions from 0', async () => {
      const stream = `test-${uid()}`;
      const result = await store.append(stream, [ev(`a${uid()}`, 1), ev(`b${uid()}`, 2)], 'no_stream');
      expect(result.nextExpectedVersion).toBe(1);
      const events = await store.read(stream);
      expect(events.map((e) => [e.revision, nOf(e), e.stream, e.type])).toEqual([
        [0, 1, stream, 'TestEvent'],
        [1, 2, stream, 'TestEvent'],
      ]);
      expect(events[1].position).toBe(result.position);
      expect(events[0].occurredAt).toMatch(/^\d{4}-\d\d-\d\dT/);
      expect((await store.read(stream, 1)).map((e) => e.revision)).toEqual([1]);
    });

    it('reads a stream that does not exist as empty', async () => {
      expect(await store.read(`test-${uid()}`)).toEqual([]);
    });

    it('refuses a wrong expected version with ConcurrencyError and writes nothing', async () => {
      const stream = `test-${uid()}`;
      await store.append(stream, [ev(`a${uid()}`, 1)], -1);
      await expect(store.append(stream, [ev(`b${uid()}`, 2)], -1)).rejects.toBeInstanceOf(ConcurrencyError);
      await expect(store.append(stream, [ev(`c${uid()}`, 3)], 5)).rejects.toMatchObject({ actual: 0 });
      expect((await store.read(stream)).length).toBe(1);
    });

    it('refuses invalid stream names and event ids before writing', async () => {
      await expect(store.append('nocategory', [ev(uid(), 1)], 'any')).rejects.toBeInstanceOf(ContractError);
      await expect(store.append('bogus-x', [ev(uid(), 1)], 'any')).rejects.toThrow(/category/);
      await expect(store.append(`test-${uid()}`, [ev('has.dot', 1)], 'any')).rejects.toThrow(/\[A-Za-z0-9_-\]/);
      await expect(store.append(`test-${uid()}`, [], 'any')).rejects.toThrow(/at least one event/);
    });

    it('lets exactly one of several concurrent writers win each version', async () => {
      const stream = `test-${uid()}`;
      const writers = await Promise.all([open(), open(), open(), open()]);
      for (let version = -1; version < 9; version++) {
        const outcomes = await Promise.allSettled(writers.map((w, i) => w.append(stream, [ev(`v${version + 1}w${i}${uid()}`, i)], version)));
        const won = outcomes.filter((o) => o.status === 'fulfilled');
        const lost = outcomes.filter((o): o is PromiseRejectedResult => o.status === 'rejected');
        expect(won).toHaveLength(1);
        for (const l of lost) expect(l.reason).toBeInstanceOf(ConcurrencyError);
      }
      const events = await store.read(stream);
      expect(events.map((e) => e.revision)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    });

    it('treats a retry of already-appended events as success without duplicates', async () => {
      const stream = `test-${uid()}`;
      const batch = [ev(`r1${uid()}`, 1), ev(`r2${uid()}`, 2)];
      const first = await store.append(stream, batch, 'no_stream');
      const again = await store.append(stream, batch, 'no_stream');
      expect(again.nextExpectedVersion).toBe(first.nextExpectedVersion);
      // a retry from another client, after the stream moved on
      await store.append(stream, [ev(`r3${uid()}`, 3)], 1);
      const other = await open();
      expect((await other.append(stream, batch, 'no_stream')).nextExpectedVersion).toBe(1);
      expect(ids(await store.read(stream))).toEqual([batch[0].id, batch[1].id, expect.any(String)]);
    });

    it('completes a batch whose first part was written before a crash', async () => {
      const stream = `test-${uid()}`;
      const batch = [ev(`p1${uid()}`, 1), ev(`p2${uid()}`, 2), ev(`p3${uid()}`, 3)];
      await store.append(stream, batch.slice(0, 1), 'no_stream'); // the part that made it
      const result = await store.append(stream, batch, 'no_stream'); // the retry after restart
      expect(result.nextExpectedVersion).toBe(2);
      expect(ids(await store.read(stream))).toEqual(batch.map((e) => e.id));
    });

    it('reads its own writes from another client at once', async () => {
      const stream = `test-${uid()}`;
      const other = await open();
      for (let i = 0; i < 5; i++) {
        await store.append(stream, [ev(`w${i}${uid()}`, i)], i - 1);
        expect((await other.read(stream)).length).toBe(i + 1);
      }
    });

    it('returns the whole log in position order with readAll', async () => {
      const from = (await store.headPosition()) + 1n;
      const a = `test-${uid()}`;
      const b = `test-${uid()}`;
      const written: string[] = [];
      for (let i = 0; i < 6; i++) {
        const id = `o${i}${uid()}`;
        await store.append(i % 2 ? a : b, [ev(id, i)], 'any');
        written.push(id);
      }
      const all = await store.readAll({ from });
      expect(ids(all)).toEqual(written);
      for (let i = 1; i < all.length; i++) expect(all[i].position > all[i - 1].position).toBe(true);
      expect(ids(await store.readAll({ from, limit: 2 }))).toEqual(written.slice(0, 2));
      expect(await store.readAll({ from: all[all.length - 1].position + 1n })).toEqual([]);
    });

    it('resumes a subscription from its checkpoint after the client restarts', async () => {
      const stream = `test-${uid()}`;
      const start = await store.headPosition();
      for (let i = 0; i < 5; i++) await store.append(stream, [ev(`s${i}${uid()}`, i)], 'any');
      const seen: RecordedEvent[] = [];
      const client1 = await open();
      const sub1 = client1.subscribe({ after: start, categories: ['test'] }, (e) => {
        if (e.stream === stream) seen.push(e);
      });
      await eventually(() => seen.length >= 3, 10_000, 'first three events');
      await sub1.stop();
      await client1.close();
      const checkpoint = seen[seen.length - 1].position;
      for (let i = 5; i < 8; i++) await store.append(stream, [ev(`s${i}${uid()}`, i)], 'any');
      const client2 = await open();
      const sub2 = client2.subscribe({ after: checkpoint, categories: ['test'] }, (e) => {
        if (e.stream === stream) seen.push(e);
      });
      await eventually(() => seen.length >= 8, 10_000, 'all eight events');
      await sub2.stop();
      expect(seen.map((e) => nOf(e))).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    });

    it('keeps a subscription going across a server restart without losing events', async () => {
      if (!h.restartServer) {
        console.log(`[contract:${name}] server restart not controllable here: case skipped`);
        return;
      }
      const stream = `test-${uid()}`;
      const seen: number[] = [];
      const sub = store.subscribe({ after: await store.headPosition(), categories: ['test'] }, (e) => {
        if (e.stream === stream) seen.push(nOf(e));
      });
      await store.append(stream, [ev(`x0${uid()}`, 0)], 'any');
      await eventually(() => seen.length === 1, 10_000, 'event before restart');
      await h.restartServer();
      await eventually(
        async () => {
          await store.append(stream, [ev(`x1${uid()}`, 1)], 0);
          return true;
        },
        20_000,
        'append after restart',
      );
      await store.append(stream, [ev(`x2${uid()}`, 2)], 1);
      await eventually(() => seen.length === 3, 30_000, 'events after restart');
      await sub.stop();
      expect(seen).toEqual([0, 1, 2]);
    });
  });
}

/** The `n` of a TestEvent (the only type these cases write). */
function nOf(event: RecordedEvent): number {
  if (!isEvent(event, TestEvent)) throw new Error(`expected a TestEvent, got ${event.type}`);
  return event.data.n;
}
