import { isEvent, TestEvent, type EventUnion, type NewEvent } from '@mesh/contracts';
import { COMMAND_RETRIES_MAX, handleCommand, type DeciderOf } from './decider';
import { ConcurrencyError, EventStoreInvariantError } from './errors';
import { InMemoryEventStore } from './memory/in-memory-event-store';

/** A counter aggregate on `test-<id>`: `add` records TestEvent {n}; adding 0 decides nothing. */
const testEvents = [TestEvent] as const;
type CounterEvent = EventUnion<typeof testEvents>;
const counter: DeciderOf<{ total: number; events: number }, { add: number }, typeof testEvents> = {
  initialState: () => ({ total: 0, events: 0 }),
  evolve: (state, event) => ({ total: state.total + event.data.n, events: state.events + 1 }),
  decide: (command) => (command.add === 0 ? [] : [{ type: 'TestEvent', data: { n: command.add } }]),
};

let seq = 0;
const toNew = (event: CounterEvent): NewEvent => ({ id: `cmd-${++seq}`, ...event });

/** Another writer slips an event into the stream after each of the next `races` reads. */
function racing(store: InMemoryEventStore, races: number) {
  const competitor = store.connect();
  let left = races;
  let reads = 0;
  const read: InMemoryEventStore['read'] = async (stream, fromRevision) => {
    reads++;
    const events = await store.read(stream, fromRevision);
    if (left-- > 0) await competitor.append(stream, [{ id: `rival-${++seq}`, type: 'TestEvent', data: { n: 100 } }], 'any');
    return events;
  };
  return { store: Object.assign(store.connect(), { read }), reads: () => reads };
}

describe('handleCommand on the in-memory store', () => {
  it('given an empty stream, when a command decides an event, then it is appended with no_stream and folded into the state', async () => {
    const store = new InMemoryEventStore();
    const result = await handleCommand(store, 'test-c1', counter, { add: 5 }, { toNew, events: testEvents });
    expect(result).toMatchObject({ stream: 'test-c1', state: { total: 5, events: 1 }, nextExpectedVersion: 0, position: 1n });
    expect(result.decided).toEqual([{ type: 'TestEvent', data: { n: 5 } }]);
    expect((await store.read('test-c1')).map((e) => e.data)).toEqual([{ n: 5 }]);
  });

  it('given a history, when the decision is a no-op, then nothing is written and the state is the history folded', async () => {
    const store = new InMemoryEventStore();
    await handleCommand(store, 'test-c2', counter, { add: 2 }, { toNew, events: testEvents });
    await handleCommand(store, 'test-c2', counter, { add: 3 }, { toNew, events: testEvents });
    const result = await handleCommand(store, 'test-c2', counter, { add: 0 }, { toNew, events: testEvents });
    expect(result).toEqual({ stream: 'test-c2', state: { total: 5, events: 2 }, events: [], decided: [], nextExpectedVersion: 1 });
    expect(result.position).toBeUndefined();
    expect(await store.headPosition()).toBe(2n);
  });

  it('given another writer racing it twice, then it reloads, decides again and succeeds on the third attempt', async () => {
    const base = new InMemoryEventStore();
    const { store, reads } = racing(base, 2);
    const result = await handleCommand(store, 'test-c3', counter, { add: 1 }, { toNew, events: testEvents });
    expect(reads()).toBe(3);
    expect(result.state).toEqual({ total: 201, events: 3 });
    expect((await base.read('test-c3')).map((e) => (isEvent(e, TestEvent) ? e.data.n : undefined))).toEqual([100, 100, 1]);
  });

  it('given conflicts beyond the retry bound, then the last ConcurrencyError is thrown after retries + 1 attempts', async () => {
    const { store, reads } = racing(new InMemoryEventStore(), 1000);
    await expect(handleCommand(store, 'test-c4', counter, { add: 1 }, { toNew, events: testEvents, retries: 3 })).rejects.toBeInstanceOf(ConcurrencyError);
    expect(reads()).toBe(4);
    const unbounded = racing(new InMemoryEventStore(), 1000);
    await expect(handleCommand(unbounded.store, 'test-c5', counter, { add: 1 }, { toNew, events: testEvents })).rejects.toBeInstanceOf(ConcurrencyError);
    expect(unbounded.reads()).toBe(COMMAND_RETRIES_MAX + 1);
  });

  it('given retries: 0, then a single conflict is thrown at once', async () => {
    const { store, reads } = racing(new InMemoryEventStore(), 1);
    await expect(handleCommand(store, 'test-c6', counter, { add: 1 }, { toNew, events: testEvents, retries: 0 })).rejects.toMatchObject({
      code: 'wrong_expected_version',
    });
    expect(reads()).toBe(1);
  });

  it('given a recorded event that is not one of the definitions, then it refuses to fold it, naming stream, revision and type', async () => {
    const store = new InMemoryEventStore();
    await store.append('test-c7', [{ id: 'odd-1', type: 'SomethingElse', data: {} }], 'no_stream');
    const outcome = handleCommand(store, 'test-c7', counter, { add: 1 }, { toNew, events: testEvents });
    await expect(outcome).rejects.toBeInstanceOf(EventStoreInvariantError);
    await expect(outcome).rejects.toThrow('stream test-c7: revision 0 is a SomethingElse, not one of TestEvent');
  });

  it('does not retry other failures', async () => {
    const store = new InMemoryEventStore();
    let reads = 0;
    const failing = Object.assign(store.connect(), {
      read: () => {
        reads++;
        return Promise.reject(new Error('disk on fire'));
      },
    });
    await expect(handleCommand(failing, 'test-c8', counter, { add: 1 }, { toNew, events: testEvents })).rejects.toThrow('disk on fire');
    expect(reads).toBe(1);
  });
});
