import 'reflect-metadata';
import { Catch, Logger, type DynamicModule, type INestMicroservice, type LogLevel, type RpcExceptionFilter } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { connect, type NatsConnection } from 'nats';
import { throwError, type Observable } from 'rxjs';
import { messageOf } from '@mesh/common';
import type { ServiceName } from '@mesh/contracts';
import { natsAuthOptionsFromFile } from '@mesh/identity';
import { ConfigError, commonEnv, loadConfig, type ConfigOf, type EnvSpec } from '@mesh/config';
import { createEventStore } from '@mesh/eventstore/factory';
import { detectPartitions } from '@mesh/eventstore/jetstream/partitions';
import { KurrentRelay } from '@mesh/eventstore/kurrentdb/relay';
import type { EventStore } from '@mesh/eventstore/port';
import type { SpanProcessor } from '@opentelemetry/sdk-trace-base';
import { startTelemetry, type TracesExporter } from './telemetry';
import { MeshTransport, type MeshTransportOptions } from './transport';
import { KvLease, isHomePartition, partitionLeaseKey } from './lease';
import { ValidatingEventStore } from './validating-store';
import type { MeshCore } from './core.module';

/** Keeps handler errors as they are (ContractError, DomainError...) so the transport can map them. */
@Catch()
export class PassThroughExceptionFilter implements RpcExceptionFilter<unknown> {
  catch(exception: unknown): Observable<never> {
    return throwError(() => exception);
  }
}

const LEVELS: LogLevel[] = ['error', 'warn', 'log', 'debug', 'verbose'];

export interface ServiceDefinition<S extends EnvSpec> {
  service: ServiceName;
  env: S;
  module: (core: MeshCore<ConfigOf<S & typeof commonEnv>>) => DynamicModule;
  healthDetails?: MeshTransportOptions['healthDetails'];
  /** Durable consumer name prefix from the config (see MeshTransportOptions.consumerPrefix). */
  consumerPrefix?: (config: ConfigOf<S & typeof commonEnv>) => string;
  /**
   * Replicated services: this replica's instance name (unique among the replicas). The replicas then
   * elect a leader through a lease (lease.ts, key = the service's name); only it runs the consumers.
   */
  instance?: (config: ConfigOf<S & typeof commonEnv>) => string;
}

export interface RunningService {
  app: INestMicroservice;
  nc: NatsConnection;
  store: EventStore;
  stop(): Promise<void>;
}

/**
 * `credsFile` (NATS_CREDS_FILE): the identity's nkey signs the connection and its replies come to its
 * own inbox prefix (the only inbox its permissions let it subscribe to). Without it the connection is
 * anonymous, which only a server without an authorization block accepts.
 */
export async function connectNats(
  url: string,
  name: string,
  credsFile: string | undefined = process.env.NATS_CREDS_FILE || undefined,
): Promise<NatsConnection> {
  // The default reads NATS_CREDS_FILE for tools that connect outside startService (the audit CLI).
  const auth = credsFile ? natsAuthOptionsFromFile(credsFile) : {};
  // noAsyncTraces: nats.js otherwise captures a stack trace (new Error) on every request, which was
  // the largest CPU cost of an append in the benchmark; timeouts still say which subject failed.
  return connect({
    servers: url.split(',').map((u) => u.trim()),
    name,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
    pingInterval: 10_000,
    noAsyncTraces: true,
    ...auth,
  });
}

/** Starts one service: validated config, NATS, event store, Nest microservice on the mesh transport. */
export interface StartOptions {
  /** Extra OpenTelemetry span processors (tests: an in-memory exporter); turns tracing on. */
  spanProcessors?: SpanProcessor[];
}

export async function startService<S extends EnvSpec>(
  definition: ServiceDefinition<S>,
  source: NodeJS.ProcessEnv = process.env,
  options: StartOptions = {},
): Promise<RunningService> {
  const config = loadConfig({ ...commonEnv, ...definition.env }, source) as ConfigOf<S & typeof commonEnv>;
  const telemetry = startTelemetry(definition.service, (config as { OTEL_TRACES_EXPORTER: TracesExporter }).OTEL_TRACES_EXPORTER, options.spanProcessors);
  try {
    const logLevel = (config as { LOG_LEVEL: LogLevel }).LOG_LEVEL;
    const nc = await connectNats((config as { NATS_URL: string }).NATS_URL, definition.service, (config as { NATS_CREDS_FILE?: string }).NATS_CREDS_FILE);
    // The log's layout from the server's own mapping (docs/cluster.md "Partitions").
    const subjects = await detectPartitions(nc);
    const inner = await createEventStore(config as never, nc, subjects);
    // Knows which service writes, so it refuses appends to categories another service owns.
    const store = new ValidatingEventStore(inner, definition.service);
    // KurrentDB mode: JetStream stays the bus; one process republishes the log there (relay.ts).
    const relay = (config as { KURRENTDB_RELAY: string }).KURRENTDB_RELAY === 'true' && inner.name === 'kurrentdb' ? new KurrentRelay(inner, nc) : undefined;
    await relay?.start();
    const instance = definition.instance?.(config);
    const leaseMs = (config as { LEADER_LEASE_MS: number }).LEADER_LEASE_MS;
    const lease = instance ? new KvLease(nc, definition.service, instance, leaseMs) : undefined;
    // One lease per partition: partitioned consumers run where their partition's lease leads.
    const replicas = (config as { SERVICE_REPLICAS: number }).SERVICE_REPLICAS;
    const partitionLeases =
      instance && subjects.partitioned
        ? Array.from(
            { length: subjects.partitions },
            (_, p) => new KvLease(nc, partitionLeaseKey(definition.service, p), instance, leaseMs, isHomePartition(p, instance, replicas)),
          )
        : [];

    const core: MeshCore<typeof config> = { service: definition.service, nc, store, config, leadership: lease, partitionLeases, subjects };
    const transport = new MeshTransport({
      service: definition.service,
      nc,
      store,
      maxDeliveries: (config as { CONSUMER_MAX_DELIVERIES: number }).CONSUMER_MAX_DELIVERIES,
      retryWindowMs: (config as { CONSUMER_RETRY_WINDOW_MS: number }).CONSUMER_RETRY_WINDOW_MS,
      retryBackoffMaxMs: (config as { CONSUMER_RETRY_BACKOFF_MAX_MS: number }).CONSUMER_RETRY_BACKOFF_MAX_MS,
      healthDetails: definition.healthDetails,
      consumerPrefix: definition.consumerPrefix?.(config),
      leadership: lease,
      subjects,
      partitionLeases,
    });
    const app = await NestFactory.createMicroservice(definition.module(core), {
      strategy: transport,
      logger: LEVELS.slice(0, LEVELS.indexOf(logLevel) + 1),
    });
    app.useGlobalFilters(new PassThroughExceptionFilter());
    await app.listen();
    // The server must have registered every subscription before we say "started": otherwise a
    // request sent right away gets no_responders (seen in the scheduler's restart test).
    await nc.flush();
    // Campaigning starts once every handler, view and listener is in place (they follow onChange).
    await lease?.start();
    // Only a service with partitioned handlers campaigns for partitions (the scheduler has none).
    const campaigning = transport.partitioned ? partitionLeases : [];
    await Promise.all(campaigning.map((partition) => partition.start()));
    let stopping: Promise<void> | undefined;
    const stop = () =>
      (stopping ??= (async () => {
        await app.close();
        // After the consumers stopped: released, so a standby takes over at once.
        await Promise.all(campaigning.map((partition) => partition.stop()));
        await lease?.stop();
        await relay?.stop();
        await store.close();
        await nc.drain().catch(() => undefined);
        await telemetry?.shutdown();
      })());
    return { app, nc, store, stop };
  } catch (err) {
    await telemetry?.shutdown();
    throw err;
  }
}

/** Entry point of a service process: start, log, stop cleanly on SIGTERM/SIGINT, exit 1 on bad config. */
export async function runService<S extends EnvSpec>(definition: ServiceDefinition<S>): Promise<void> {
  const log = new Logger(definition.service);
  let running: RunningService | undefined;
  // A signal during the start is kept and acted on once started: the service answers health
  // requests before its start completes (a replicated one then still campaigns for its lease), and
  // without a handler Node would die of the signal instead of stopping cleanly.
  let requested: string | undefined;
  const shutdown = (signal: string) => {
    if (!running) {
      requested ??= signal;
      return;
    }
    const service = running;
    log.log(`${signal}: shutting down`);
    const timer = setTimeout(() => process.exit(1), 10_000);
    timer.unref();
    service.stop().then(
      () => process.exit(0),
      (err) => {
        log.error(`shutdown failed: ${messageOf(err)}`);
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));
  try {
    running = await startService(definition);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${definition.service}: ${err.message}\n`);
      process.exit(1);
    }
    process.stderr.write(`${definition.service}: failed to start: ${(err instanceof Error ? err.stack : undefined) ?? messageOf(err)}\n`);
    process.exit(1);
  }
  log.log(`${definition.service} ready (pid ${process.pid})`);
  if (requested) shutdown(requested);
}
