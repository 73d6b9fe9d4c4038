import { Controller, Inject, Module, type DynamicModule } from '@nestjs/common';
import { z } from 'zod';
import { DomainError, defineRequest, isEvent, MessageDeadLettered, TestEvent, type RecordedEvent } from '@mesh/contracts';
import { JetStreamEventStore, type EventStore } from '@mesh/eventstore';
import {
  EVENT_STORE,
  MeshClient,
  MeshCoreModule,
  OnEvents,
  OnRequest,
  RequestError,
  parseTraceparent,
  startService,
  type MeshCore,
  type RunningService,
} from '@mesh/runtime';
import { NatsServerProcess, eventually } from '@mesh/testing';

/** What the probe controller saw, per event id. */
const attempts = new Map<string, number>();
const handled: RecordedEvent[] = [];
const seenTraceparents = new Map<string, string | undefined>();

const echo = defineRequest(
  'command',
  'mesh.api.scaler.test-echo',
  z.object({ name: z.string().min(2, { error: 'must have at least 2 characters' }), amount: z.string().regex(/^\d+$/, { error: 'must be digits' }) }),
  z.object({ hello: z.string() }),
  'echo',
);
const refuse = defineRequest('command', 'mesh.api.scaler.test-refuse', z.object({}), z.object({}), 'always refused');
const relay = defineRequest('command', 'mesh.api.scaler.test-relay', z.object({ id: z.string() }), z.object({ position: z.string() }), 'appends an event');

@Controller()
class ProbeController {
  constructor(@Inject(EVENT_STORE) private readonly store: EventStore) {}

  // The retry window (RETRY_WINDOW_MS below) parks a failing event, well before this bound.
  @OnEvents('test', { maxDeliveries: 50 })
  async onTest(event: RecordedEvent) {
    const n = (attempts.get(event.id) ?? 0) + 1;
    attempts.set(event.id, n);
    if (!isEvent(event, TestEvent)) throw new Error(`unexpected ${event.type}`);
    const data = event.data;
    if (data.note === 'fail-twice' && n <= 2) throw new Error(`transient failure ${n}`);
    if (data.note === 'always-fail') throw new Error('permanent failure');
    seenTraceparents.set(event.id, event.traceparent);
    handled.push(event);
  }

  @OnRequest(echo)
  echo(body: { name: string }) {
    return { hello: body.name };
  }

  @OnRequest(refuse)
  refuse() {
    throw new DomainError('no_way', 'this command is always refused');
  }

  @OnRequest(relay)
  async relay(body: { id: string }) {
    const result = await this.store.append(`test-${body.id}`, [{ id: body.id, type: 'TestEvent', data: { n: 1 } }], 'any');
    return { position: result.position.toString() };
  }
}

@Module({})
class ProbeModule {
  static forRoot(core: MeshCore): DynamicModule {
    return { module: ProbeModule, imports: [MeshCoreModule.forRoot(core)], controllers: [ProbeController] };
  }
}

/** Short, so a failing event is parked quickly; in production it is minutes (CONSUMER_RETRY_WINDOW_MS). */
const RETRY_WINDOW_MS = 1500;

describe('mesh transport (NestJS over real NATS/JetStream)', () => {
  let server: NatsServerProcess;
  let service: RunningService;
  let raw: JetStreamEventStore;
  let client: MeshClient;

  beforeAll(async () => {
    server = await NatsServerProcess.start();
    service = await startService(
      { service: 'scaler', env: {}, module: (core) => ProbeModule.forRoot(core) },
      {
        NATS_URL: server.url,
        LOG_LEVEL: 'error',
        CONSUMER_RETRY_WINDOW_MS: String(RETRY_WINDOW_MS),
      },
    );
    const nc = await server.connect();
    raw = await JetStreamEventStore.connect(nc);
    client = new MeshClient(nc);
  });
  afterAll(async () => {
    await service?.stop();
    await raw?.connection.close();
    await server?.dispose();
  });

  it('acks an event once its handler succeeds and reports the position in health', async () => {
    const { position } = await raw.append('test-ok', [{ id: 'ok-1', type: 'TestEvent', data: { n: 1 } }], 'any');
    await eventually(() => handled.find((e) => e.id === 'ok-1'), 10_000, 'handled');
    expect(attempts.get('ok-1')).toBe(1);
    const health = (await client.requestRaw('mesh.api.scaler.health', {})) as { positions: Record<string, string>; status: string };
    expect(health.status).toBe('ok');
    await eventually(
      async () => {
        const h = (await client.requestRaw('mesh.api.scaler.health', {})) as { positions: Record<string, string> };
        return BigInt(h.positions.scaler_test ?? '0') >= position;
      },
      10_000,
      'position in health',
    );
  });

  it('naks a failing event with backoff and handles it on a later delivery', async () => {
    await raw.append('test-retry', [{ id: 'retry-1', type: 'TestEvent', data: { n: 2, note: 'fail-twice' } }], 'any');
    await eventually(() => handled.find((e) => e.id === 'retry-1'), 15_000, 'handled after retries');
    expect(attempts.get('retry-1')).toBe(3);
  });

  it('retries a failing event for the retry window, then parks it with what a replay needs, and moves on', async () => {
    const { position } = await raw.append('test-dead', [{ id: 'dead-1', type: 'TestEvent', data: { n: 3, note: 'always-fail' } }], 'any');
    await raw.append('test-dead', [{ id: 'after-dead', type: 'TestEvent', data: { n: 4 } }], 'any');
    const letter = await eventually(
      async () => {
        const events = await raw.read('deadletter-scaler');
        return events.find((e) => isEvent(e, MessageDeadLettered) && e.data.eventId === 'dead-1');
      },
      20_000,
      'dead letter',
    );
    if (!isEvent(letter, MessageDeadLettered)) throw new Error(`expected MessageDeadLettered, got ${letter.type}`);
    expect(letter.id).toBe(`scaler_test-${position}`);
    expect(letter.data).toMatchObject({
      consumer: 'scaler_test',
      eventType: 'TestEvent',
      subject: 'mesh.events.test.dead',
      stream: 'test-dead',
      streamSequence: position.toString(),
      cause: 'exhausted',
      deliveries: attempts.get('dead-1'),
    });
    expect(letter.data.error).toContain('permanent failure');
    // Parked only once the window had passed since the first failure (not after a fixed count).
    expect(Date.parse(letter.data.lastFailedAt ?? '') - Date.parse(letter.data.firstFailedAt ?? '')).toBeGreaterThanOrEqual(RETRY_WINDOW_MS);
    expect(attempts.get('dead-1')).toBeGreaterThan(1);
    await eventually(() => handled.find((e) => e.id === 'after-dead'), 10_000, 'next event handled');
  });

  it('parks an event that breaks its contract at once, without calling the handler', async () => {
    await raw.append('test-bad', [{ id: 'bad-1', type: 'TestEvent', data: { n: 'not a number' } }], 'any');
    const letter = await eventually(
      async () => (await raw.read('deadletter-scaler')).find((e) => isEvent(e, MessageDeadLettered) && e.data.eventId === 'bad-1'),
      10_000,
      'dead letter',
    );
    expect(isEvent(letter, MessageDeadLettered) && letter.data).toMatchObject({ cause: 'contract', deliveries: 1, stream: 'test-bad' });
    expect(attempts.has('bad-1')).toBe(false);
  });

  it('validates requests and names the field and the rule', async () => {
    await expect(client.request(echo, { name: 'mesh', amount: '5' })).resolves.toEqual({ hello: 'mesh' });
    const err = (await client.requestRaw(echo.subject, { name: 'x', amount: '1.5' }).catch((e: unknown) => e)) as RequestError;
    expect(err).toBeInstanceOf(RequestError);
    expect(err.code).toBe('invalid_input');
    expect(err.issues).toEqual([
      { field: 'name', rule: 'must have at least 2 characters' },
      { field: 'amount', rule: 'must be digits' },
    ]);
  });

  it('returns domain refusals with their code', async () => {
    await expect(client.request(refuse, {})).rejects.toMatchObject({ code: 'no_way', message: 'this command is always refused' });
  });

  it('answers a request for a service that is not running with a clear error', async () => {
    await expect(client.requestRaw('mesh.api.ledger.nothing-here', {}, 1000)).rejects.toMatchObject({ code: 'no_responders' });
  });

  it('carries the trace id from a request through the event it causes to its consumer', async () => {
    const reply = await client.request(relay, { id: 'traced-1' });
    expect(BigInt(reply.position)).toBeGreaterThan(0n);
    await eventually(() => seenTraceparents.has('traced-1'), 10_000, 'consumer saw the event');
    const [event] = await raw.read('test-traced-1');
    const stored = parseTraceparent(event.traceparent);
    const consumed = parseTraceparent(seenTraceparents.get('traced-1'));
    expect(stored?.traceId).toMatch(/^[0-9a-f]{32}$/);
    expect(consumed?.traceId).toBe(stored?.traceId);
  });
});
