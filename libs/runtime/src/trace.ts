import { AsyncLocalStorage } from 'node:async_hooks';
import { randomBytes } from 'node:crypto';
import {
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  context as otelContext,
  defaultTextMapGetter,
  defaultTextMapSetter,
  trace as otelTrace,
  type Attributes,
  type Span,
  type SpanContext,
} from '@opentelemetry/api';
// The W3C propagator lives in core, which needs only the API: tracing without the SDK keeps working.
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { messageOf } from '@mesh/common';

/**
 * W3C trace context (https://www.w3.org/TR/trace-context/) carried in the `traceparent` NATS header
 * on every publish, request and event, parsed by OpenTelemetry's W3C propagator, which also writes
 * it for span contexts (the per-event child without the SDK is written directly, see
 * outgoingTraceparent). An
 * active OpenTelemetry span wins when an SDK is set up; otherwise the context of the message being
 * handled (AsyncLocalStorage) is continued, so a chain request -> event -> event shares one trace
 * id across services without any SDK.
 */
const propagator = new W3CTraceContextPropagator();

/** What the message being handled passes on to everything it causes. */
export interface MessageContext {
  traceparent?: string;
  correlationId?: string;
  causationId?: string;
}
/** The message context with its traceparent parsed once (outgoingTraceparent runs per event appended). */
interface StoredContext extends MessageContext {
  /** `00-<trace id>-` of the parent, and `-<flags>`: what every child traceparent starts and ends with. */
  childPrefix?: string;
  childSuffix?: string;
}
const storage = new AsyncLocalStorage<StoredContext>();

export interface TraceContext {
  traceId: string;
  spanId: string;
  flags: string;
}

/** The span context of a `traceparent` value; undefined when it is missing, malformed or all-zero. */
function spanContextOf(traceparent: string | undefined | null): SpanContext | undefined {
  if (!traceparent) return undefined;
  const spanContext = otelTrace.getSpanContext(propagator.extract(ROOT_CONTEXT, { traceparent }, defaultTextMapGetter));
  return spanContext && otelTrace.isSpanContextValid(spanContext) ? spanContext : undefined;
}

/** The `traceparent` value of a span context ('' when it is not valid). */
function traceparentOf(spanContext: SpanContext): string {
  const carrier: { traceparent?: string } = {};
  propagator.inject(otelTrace.setSpanContext(ROOT_CONTEXT, spanContext), carrier, defaultTextMapSetter);
  return carrier.traceparent ?? '';
}

export function parseTraceparent(value: string | undefined | null): TraceContext | undefined {
  const spanContext = spanContextOf(value);
  return spanContext && { traceId: spanContext.traceId, spanId: spanContext.spanId, flags: spanContext.traceFlags.toString(16).padStart(2, '0') };
}

export function formatTraceparent(ctx: TraceContext): string {
  return traceparentOf({ traceId: ctx.traceId, spanId: ctx.spanId, traceFlags: parseInt(ctx.flags, 16) });
}

/**
 * Trace and span ids need randomness, not secrecy: take them from a pooled crypto buffer instead
 * of a randomBytes call per message (measured at ~10% of an append's CPU).
 */
const RANDOM_POOL_BYTES = 64 * 1024;
let pool = randomBytes(RANDOM_POOL_BYTES);
let poolOffset = 0;
function randomHex(bytes: number): string {
  if (poolOffset + bytes > pool.length) {
    pool = randomBytes(RANDOM_POOL_BYTES);
    poolOffset = 0;
  }
  const hex = pool.toString('hex', poolOffset, poolOffset + bytes);
  poolOffset += bytes;
  return hex;
}

function activeOtelTraceparent(): string | undefined {
  const ctx = otelTrace.getActiveSpan()?.spanContext();
  return ctx && otelTrace.isSpanContextValid(ctx) ? traceparentOf(ctx) : undefined;
}

/**
 * The traceparent to put on an outgoing message: the active OpenTelemetry span itself when tracing
 * (so the receiver's span is its child in the exported trace), else a child of the current message
 * context, or a new trace.
 */
export function outgoingTraceparent(): string {
  const active = tracingOn ? activeOtelTraceparent() : undefined;
  if (active) return active;
  // Without the SDK this runs once per event appended, so the child is written directly from the
  // parent the propagator parsed: going through propagator.inject (a span and a context per call)
  // cost ~3-4 us of CPU per append in the event store benchmark (about 10%), measured.
  const stored = storage.getStore();
  if (stored?.childPrefix) return `${stored.childPrefix}${randomHex(8)}${stored.childSuffix}`;
  return `00-${randomHex(16)}-${randomHex(8)}-01`;
}

/** Runs `fn` inside the context of an incoming message (trace, correlation and causation ids). */
export function runInMessageContext<T>(context: MessageContext, fn: () => T): T {
  const parent = spanContextOf(context.traceparent);
  if (!parent) return storage.run({ ...context, traceparent: undefined }, fn);
  const childPrefix = `00-${parent.traceId}-`;
  const childSuffix = `-${parent.traceFlags.toString(16).padStart(2, '0')}`;
  return storage.run({ ...context, traceparent: context.traceparent, childPrefix, childSuffix }, fn);
}

export function currentMessageContext(): MessageContext | undefined {
  return storage.getStore(); // as stored (with the child prefix and suffix): this runs per event appended
}

// --- OpenTelemetry spans (no-ops unless telemetry.ts started the SDK) ---------------------------

let tracingOn = false;
const TRACER = 'mesh';

/** Whether the OpenTelemetry SDK is running in this process (telemetry.ts turns it on). */
export const tracingEnabled = () => tracingOn;
export function setTracing(on: boolean): void {
  tracingOn = on;
}

/**
 * Runs `fn` as the span of a handled message: a child of `traceparent` (the message's header), or
 * a new trace. Without tracing it just runs `fn`. Attributes are built only when tracing: this is
 * on the path of every message.
 */
export function inHandlerSpan<T>(
  name: string,
  kind: 'server' | 'consumer',
  traceparent: string | undefined,
  attributes: () => Attributes,
  fn: () => Promise<T>,
): Promise<T> {
  if (!tracingOn) return fn();
  const parent = spanContextOf(traceparent);
  const parentContext = parent ? otelTrace.setSpanContext(ROOT_CONTEXT, parent) : ROOT_CONTEXT;
  const span = otelTrace
    .getTracer(TRACER)
    .startSpan(name, { kind: kind === 'server' ? SpanKind.SERVER : SpanKind.CONSUMER, attributes: attributes() }, parentContext);
  return otelContext.with(otelTrace.setSpan(parentContext, span), () => ended(span, fn));
}

/**
 * A PRODUCER span for one message sent (an appended event) and the `traceparent` to send with it:
 * the span's own id when tracing, else a child of the current context (trace.ts).
 */
export function producerSpan(name: string, attributes: () => Attributes): { traceparent: string; span?: Span } {
  if (!tracingOn) return { traceparent: outgoingTraceparent() };
  const span = otelTrace.getTracer(TRACER).startSpan(name, { kind: SpanKind.PRODUCER, attributes: attributes() });
  return { span, traceparent: traceparentOf(span.spanContext()) };
}

/** Ends a span with the outcome of `fn`; without a span (tracing off) just runs `fn`. */
export function ended<T>(span: Span | undefined, fn: () => Promise<T>): Promise<T> {
  return span ? endedSpan(span, fn) : fn();
}

async function endedSpan<T>(span: Span, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    span.recordException(err instanceof Error ? err : messageOf(err));
    span.setStatus({ code: SpanStatusCode.ERROR, message: messageOf(err) });
    throw err;
  } finally {
    span.end();
  }
}
