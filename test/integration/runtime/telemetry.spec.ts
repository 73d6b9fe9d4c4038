import { Controller, Inject, Module, type DynamicModule } from '@nestjs/common';
import { SpanKind } from '@opentelemetry/api';
import { InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { headers as natsHeaders, type NatsConnection } from 'nats';
import { z } from 'zod';
import { defineRequest, type RecordedEvent } from '@mesh/contracts';
import { JetStreamEventStore, type EventStore } from '@mesh/eventstore';
import {
  EVENT_STORE,
  MeshCoreModule,
  OnEvents,
  OnRequest,
  parseTraceparent,
  startService,
  tracingEnabled,
  type MeshCore,
  type RunningService,
} from '@mesh/runtime';
import { NatsServerProcess, eventually } from '@mesh/testing';

const relay = defineRequest(
  'command',
  'mesh.api.scaler.test-trace-relay',
  z.object({ id: z.string() }),
  z.object({ position: z.string() }),
  'appends an event',
);
const consumed = new Map<string, RecordedEvent>();

@Controller()
class TraceProbeController {
  constructor(@Inject(EVENT_STORE) private readonly store: EventStore) {}

  @OnRequest(relay)
  async relay(body: { id: string }) {
    const result = await this.store.append(`test-${body.id}`, [{ id: body.id, type: 'TestEvent', data: { n: 1 } }], 'any');
    return { position: result.position.toString() };
  }

  @OnEvents('test')
  onTest(event: RecordedEvent) {
    consumed.set(event.id, event);
  }
}

@Module({})
class TraceProbeModule {
  static forRoot(core: MeshCore): DynamicModule {
    return { module: TraceProbeModule, imports: [MeshCoreModule.forRoot(core)], controllers: [TraceProbeController] };
  }
}

/**
 * OpenTelemetry on a real nats-server: a request, the event it appends and the consumer that
 * handles that event form one trace (SERVER -> PRODUCER -> CONSUMER), and the event's stored
 * traceparent is its PRODUCER span. Spans go to an in-memory exporter.
 */
describe('OpenTelemetry tracing across a request, an append and a consumer', () => {
  let server: NatsServerProcess;
  let service: RunningService;
  let nc: NatsConnection;
  let raw: JetStreamEventStore;
  const exporter = new InMemorySpanExporter();

  beforeAll(async () => {
    server = await NatsServerProcess.start();
    service = await startService(
      { service: 'scaler', env: {}, module: (core) => TraceProbeModule.forRoot(core) },
      { NATS_URL: server.url, LOG_LEVEL: 'error' },
      { spanProcessors: [new SimpleSpanProcessor(exporter)] },
    );
    nc = await server.connect('telemetry-test');
    raw = await JetStreamEventStore.connect(nc);
  });
  afterAll(async () => {
    await service?.stop();
    await nc?.close();
    await server?.dispose();
  });

  const spanNamed = (name: string, kind: SpanKind) => exporter.getFinishedSpans().find((s) => s.name === name && s.kind === kind);
  const idOf = (span: ReadableSpan) => span.spanContext().spanId;

  it("links SERVER -> PRODUCER -> CONSUMER in the caller's trace, and the stored event carries its PRODUCER span", async () => {
    expect(tracingEnabled()).toBe(true);
    const traceId = '0af7651916cd43dd8448eb211c80319c';
    const callerSpanId = 'b7ad6b7169203331';
    const h = natsHeaders();
    h.set('traceparent', `00-${traceId}-${callerSpanId}-01`);
    const reply = await nc.request(relay.subject, Buffer.from(JSON.stringify({ id: 'traced-otel-1' })), { headers: h, timeout: 5000 });
    expect(JSON.parse(Buffer.from(reply.data).toString())).toMatchObject({ ok: true });
    await eventually(() => consumed.has('traced-otel-1') && spanNamed('process TestEvent', SpanKind.CONSUMER), 10_000, 'consumer span');

    const serverSpan = spanNamed(relay.subject, SpanKind.SERVER)!;
    const producer = spanNamed('publish TestEvent', SpanKind.PRODUCER)!;
    const consumer = spanNamed('process TestEvent', SpanKind.CONSUMER)!;
    expect(serverSpan.spanContext().traceId).toBe(traceId);
    expect(serverSpan.parentSpanContext?.spanId).toBe(callerSpanId);
    expect(producer.spanContext().traceId).toBe(traceId);
    expect(producer.parentSpanContext?.spanId).toBe(idOf(serverSpan));
    expect(consumer.spanContext().traceId).toBe(traceId);
    expect(consumer.parentSpanContext?.spanId).toBe(idOf(producer));
    expect(consumer.attributes).toMatchObject({
      'messaging.system': 'nats',
      'messaging.message.id': 'traced-otel-1',
      'mesh.event.stream': 'test-traced-otel-1',
    });
    expect(serverSpan.resource.attributes['service.name']).toBe('mesh-scaler');

    const [stored] = await raw.read('test-traced-otel-1');
    expect(parseTraceparent(stored.traceparent)).toMatchObject({ traceId, spanId: idOf(producer) });
  });
});
