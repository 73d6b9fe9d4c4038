import { Controller, Inject, Module, type DynamicModule } from '@nestjs/common';
import { MessageReplayed, TestEvent, deadLetterReplaySubject, isEvent, type RecordedEvent } from '@mesh/contracts';
import { JetStreamEventStore, type EventStore } from '@mesh/eventstore';
import { EVENT_STORE, MeshClient, MeshCoreModule, OnEvents, startService, type DeadLetter, type MeshCore, type RunningService } from '@mesh/runtime';
import { NatsServerProcess, eventually, meshFromSource } from '@mesh/testing';

/** The dependency the handler waits for: down until the test brings it back. */
let dependencyUp = false;
/** Handler calls that got through (applied), per event id, and every call. */
const applied = new Map<string, number>();
const calls = new Map<string, number>();

@Controller()
class BillingProbe {
  constructor(@Inject(EVENT_STORE) private readonly store: EventStore) {}

  /** Stands for a billing consumer: its effect is an event with an id derived from the cause (idempotent). */
  @OnEvents('test')
  async onTest(event: RecordedEvent) {
    if (!isEvent(event, TestEvent)) throw new Error(`unexpected ${event.type}`);
    if (event.data.note === 'effect') return; // its own effects come back through the same category
    calls.set(event.id, (calls.get(event.id) ?? 0) + 1);
    if (!dependencyUp) throw new Error(`dependency down while handling ${event.id}`);
    await this.store.append(`test-effect-${event.id}`, [{ id: `effect-${event.id}`, type: 'TestEvent', data: { n: event.data.n, note: 'effect' } }], 'any');
    applied.set(event.id, (applied.get(event.id) ?? 0) + 1);
  }
}

@Module({})
class ProbeModule {
  static forRoot(core: MeshCore): DynamicModule {
    return { module: ProbeModule, imports: [MeshCoreModule.forRoot(core)], controllers: [BillingProbe] };
  }
}

/**
 * Dead letters on a real nats-server, with the `mesh` CLI as a real process: a handler that fails
 * until its dependency comes back is parked after the retry window, listed, replayed (applied once),
 * and a second replay is a no-op.
 */
describe('dead letters: parked, listed, replayed', () => {
  let server: NatsServerProcess;
  let service: RunningService;
  let raw: JetStreamEventStore;
  const mesh = (...args: string[]) => meshFromSource(server.url, ...args);
  const listed = async (...extra: string[]): Promise<DeadLetter[]> => {
    const r = await mesh('--json', 'deadletter', 'list', ...extra);
    expect(r).toMatchObject({ code: 0 });
    return (JSON.parse(r.out) as { deadLetters: DeadLetter[] }).deadLetters;
  };
  const parkedIds = async () => (await raw.read('deadletter-scaler')).filter((e) => e.type === 'MessageDeadLettered').map((e) => e.id);

  beforeAll(async () => {
    server = await NatsServerProcess.start();
    service = await startService(
      { service: 'scaler', env: {}, module: (core) => ProbeModule.forRoot(core) },
      { NATS_URL: server.url, LOG_LEVEL: 'error', CONSUMER_RETRY_WINDOW_MS: '1000' },
    );
    raw = await JetStreamEventStore.connect(await server.connect('deadletter-test'));
  });
  afterAll(async () => {
    await service?.stop();
    await raw?.connection.close();
    await server?.dispose();
  });

  it('parks a message whose handler keeps failing, lists it, replays it once the cause is fixed, and a second replay is a no-op', async () => {
    const { position } = await raw.append('test-usage', [{ id: 'sample-1', type: 'TestEvent', data: { n: 1 } }], 'any');
    await eventually(async () => (await parkedIds()).length === 1, 20_000, 'parked');

    const [letter] = await listed('--service', 'scaler');
    expect(letter).toMatchObject({
      id: `scaler_test-${position}`,
      service: 'scaler',
      consumer: 'scaler_test',
      eventId: 'sample-1',
      eventType: 'TestEvent',
      streamSequence: position.toString(),
      status: 'parked',
      replays: 0,
    });
    expect(letter.error).toContain('dependency down while handling sample-1');
    const human = await mesh('deadletter', 'list');
    expect(human.out).toContain(letter.id);
    expect(human.out).toContain('dependency down');

    // Replayed while the cause is still there: it fails again, stays parked, and the CLI says so (exit 1).
    const early = await mesh('deadletter', 'replay', letter.id);
    expect(early.code).toBe(1);
    expect(early.out).toContain(`${letter.id}: failed`);
    const afterEarly = await listed();
    expect(afterEarly).toMatchObject([{ id: letter.id, replays: 1 }]);
    expect(afterEarly[0].lastReplayError).toContain('dependency down');
    expect(applied.get('sample-1')).toBeUndefined();

    dependencyUp = true;
    const replay = await mesh('--json', 'deadletter', 'replay', letter.id);
    expect(replay.code).toBe(0);
    expect(JSON.parse(replay.out)).toEqual({ replayed: [{ id: letter.id, outcome: 'applied' }] });
    expect(applied.get('sample-1')).toBe(1);
    expect(await raw.read('test-effect-sample-1')).toHaveLength(1);
    expect(await listed()).toEqual([]);

    // Again: resolved, so nothing runs (from the CLI, and from the service when asked directly).
    const callsBefore = calls.get('sample-1');
    const again = await mesh('deadletter', 'replay', letter.id);
    expect(again.code).toBe(0);
    expect(again.out).toContain('already resolved');
    const client = new MeshClient(raw.connection);
    await expect(client.requestRaw(deadLetterReplaySubject('scaler', 'scaler_test'), { id: letter.id })).resolves.toEqual({
      id: letter.id,
      outcome: 'already-resolved',
    });
    expect(calls.get('sample-1')).toBe(callsBefore);
    const records = (await raw.read('deadletter-scaler')).filter((e) => isEvent(e, MessageReplayed));
    expect(records.map((e) => isEvent(e, MessageReplayed) && e.data.outcome)).toEqual(['failed', 'applied']);
  });

  it('replays every parked message of a service with --all; unknown ids and bad usage are refused', async () => {
    dependencyUp = false;
    await raw.append('test-usage', [{ id: 'sample-2', type: 'TestEvent', data: { n: 2 } }], 'any');
    await raw.append('test-usage', [{ id: 'sample-3', type: 'TestEvent', data: { n: 3 } }], 'any');
    await eventually(async () => (await parkedIds()).length === 3, 20_000, 'two more parked');
    expect((await listed()).map((l) => l.eventId)).toEqual(['sample-2', 'sample-3']);

    dependencyUp = true;
    const all = await mesh('--json', 'deadletter', 'replay', '--all', '--service', 'scaler');
    expect(all.code).toBe(0);
    expect((JSON.parse(all.out) as { replayed: { outcome: string }[] }).replayed.map((r) => r.outcome)).toEqual(['applied', 'applied']);
    expect([applied.get('sample-2'), applied.get('sample-3')]).toEqual([1, 1]);
    expect(await listed()).toEqual([]);

    const unknown = await mesh('deadletter', 'replay', 'no-such-letter');
    expect(unknown.code).toBe(1);
    expect(unknown.err).toContain('no dead letter no-such-letter');
    expect((await mesh('deadletter', 'replay')).code).toBe(2);
    expect((await mesh('deadletter', 'list', '--service', 'nobody')).code).toBe(2);
  });
});
