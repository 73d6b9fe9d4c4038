import { context, trace } from '@opentelemetry/api';
import type { SpanProcessor } from '@opentelemetry/sdk-trace-base';
import { setTracing, tracingEnabled } from './trace';

/**
 * OpenTelemetry tracing, off unless asked for (OTEL_TRACES_EXPORTER=otlp|console, or span
 * processors given by a test). When on, every request and event a service handles is a span
 * (SERVER for requests, CONSUMER for events) whose parent is the `traceparent` of the message, and
 * every event appended is a PRODUCER span whose id goes out in the event's `traceparent` header, so
 * one trace follows a request or a sample through every service (the span helpers are in trace.ts,
 * which loads no SDK). When off, the SDK is not started and `traceparent` still propagates.
 */
export type TracesExporter = 'none' | 'otlp' | 'console';

export interface Telemetry {
  shutdown(): Promise<void>;
}

/** Starts the SDK for this process; undefined when tracing is off. One per process. */
export function startTelemetry(service: string, exporter: TracesExporter, spanProcessors: SpanProcessor[] = []): Telemetry | undefined {
  if (exporter === 'none' && spanProcessors.length === 0) return undefined;
  // Loaded only when tracing is on: the SDK is not needed (nor paid for at start-up) otherwise.
  /* eslint-disable @typescript-eslint/no-require-imports */
  const { BatchSpanProcessor, ConsoleSpanExporter } = require('@opentelemetry/sdk-trace-base') as typeof import('@opentelemetry/sdk-trace-base');
  const { NodeTracerProvider } = require('@opentelemetry/sdk-trace-node') as typeof import('@opentelemetry/sdk-trace-node');
  const { resourceFromAttributes } = require('@opentelemetry/resources') as typeof import('@opentelemetry/resources');
  const processors = [...spanProcessors];
  if (exporter === 'otlp') {
    // The OTLP exporter reads OTEL_EXPORTER_OTLP_ENDPOINT / OTEL_EXPORTER_OTLP_TRACES_ENDPOINT itself.
    const { OTLPTraceExporter } = require('@opentelemetry/exporter-trace-otlp-http') as typeof import('@opentelemetry/exporter-trace-otlp-http');
    processors.push(new BatchSpanProcessor(new OTLPTraceExporter()));
  }
  if (exporter === 'console') processors.push(new BatchSpanProcessor(new ConsoleSpanExporter()));
  /* eslint-enable @typescript-eslint/no-require-imports */
  if (tracingEnabled()) throw new Error('telemetry is already started in this process');
  const provider = new NodeTracerProvider({
    resource: resourceFromAttributes({ 'service.name': `mesh-${service}`, 'service.namespace': 'mesh' }),
    spanProcessors: processors,
  });
  provider.register();
  setTracing(true);
  return {
    shutdown: async () => {
      setTracing(false);
      await provider.shutdown();
      trace.disable();
      context.disable();
    },
  };
}
