import { z } from 'zod';

/**
 * Configuration comes from environment variables, validated at start-up. A bad value stops the
 * service with a message naming the variable and the rule. Every variable lives in a schema so the
 * README's reference table can be generated from the same place (see `describeConfig`).
 */
export class ConfigError extends Error {
  constructor(readonly problems: { variable: string; rule: string }[]) {
    super(`invalid configuration:\n${problems.map((p) => `  ${p.variable}: ${p.rule}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

export interface EnvVar<T> {
  schema: z.ZodType<T>;
  description: string;
  default?: string;
}

export type EnvSpec = Record<string, EnvVar<unknown>>;
export type ConfigOf<S extends EnvSpec> = { [K in keyof S]: S[K] extends EnvVar<infer T> ? T : never };

export const env = {
  string: (description: string, defaultValue?: string): EnvVar<string> => ({
    schema: z.string().min(1, { error: 'must not be empty' }),
    description,
    default: defaultValue,
  }),
  optionalString: (description: string): EnvVar<string | undefined> => ({ schema: z.string().min(1).optional(), description }),
  int: (description: string, defaultValue: number, min: number, max: number, unit = ''): EnvVar<number> => ({
    schema: z.coerce
      .number({ error: 'must be a number' })
      .int({ error: 'must be an integer' })
      .min(min, { error: `must be >= ${min}${unit}` })
      .max(max, { error: `must be <= ${max}${unit}` }),
    description,
    default: String(defaultValue),
  }),
  oneOf: <T extends string>(description: string, values: readonly [T, ...T[]], defaultValue: T): EnvVar<T> => ({
    schema: z.enum(values, { error: `must be one of ${values.join('|')}` }),
    description,
    default: defaultValue,
  }),
  url: (description: string, defaultValue: string, protocols: string[]): EnvVar<string> => ({
    schema: z.string().refine(
      (v) =>
        v.split(',').every((u) => {
          try {
            return protocols.includes(new URL(u.trim()).protocol);
          } catch {
            return false;
          }
        }),
      { error: `must be a ${protocols.join(' or ')} URL (comma-separated for several)` },
    ),
    description,
    default: defaultValue,
  }),
  id: (description: string, defaultValue?: string): EnvVar<string> => ({
    schema: z.string().regex(/^[A-Za-z0-9_-]{1,128}$/, { error: 'must match [A-Za-z0-9_-]{1,128}' }),
    description,
    default: defaultValue,
  }),
  amount: (description: string, defaultValue: string): EnvVar<string> => ({
    schema: z.string().regex(/^\d{1,15}(\.\d{1,8})?$/, { error: 'must be a non-negative decimal such as "0.5" (at most 8 decimals)' }),
    description,
    default: defaultValue,
  }),
};

/** Variables every service reads. */
export const commonEnv = {
  NATS_URL: env.url('NATS server(s) to connect to', 'nats://127.0.0.1:4222', ['nats:', 'tls:']),
  NATS_CREDS_FILE: env.optionalString(
    "This service's NATS credentials (JSON with its nkey seed, written by `mesh up` / provision.sh under <data dir>/secrets/nats/, docs/security.md); unset: connect without credentials (only a server without authorization accepts that)",
  ),
  EVENT_STORE: env.oneOf('Event store adapter: JetStream (embedded default) or KurrentDB', ['jetstream', 'kurrentdb'] as const, 'jetstream'),
  KURRENTDB_CONNECTION_STRING: env.optionalString('KurrentDB/EventStoreDB connection string, required when EVENT_STORE=kurrentdb'),
  KURRENTDB_RELAY: env.oneOf('Run the KurrentDB -> JetStream relay in this process (exactly one replica in the cluster)', ['true', 'false'] as const, 'false'),
  EVENT_REPLICAS: env.int(
    'Replicas of the JetStream event stream (3 in a NATS cluster, `mesh up --nats-cluster 3`); the KV and object buckets get as many as the stream has',
    1,
    1,
    5,
  ),
  LOG_LEVEL: env.oneOf('Log verbosity', ['error', 'warn', 'log', 'debug', 'verbose'] as const, 'log'),
  CONSUMER_RETRY_WINDOW_MS: env.int(
    'A failing event is redelivered (capped exponential backoff) for this long after its first failure, then parked as a dead letter (mesh deadletter list/replay); long enough to ride out a NATS or service restart',
    600_000,
    100,
    86_400_000,
    ' ms',
  ),
  CONSUMER_RETRY_BACKOFF_MAX_MS: env.int(
    'Longest wait between two deliveries of a failing event (the backoff starts at 200 ms and doubles)',
    30_000,
    200,
    600_000,
    ' ms',
  ),
  CONSUMER_MAX_DELIVERIES: env.int(
    'Hard bound on the deliveries of one failing event within the retry window (a handler that hangs until the ack wait also counts); reaching it parks the event early',
    100,
    1,
    10_000,
  ),
  LEADER_LEASE_MS: env.int(
    'Replicated services (all but the container-manager): how long the leader lease in the KV bucket mesh-leases lasts without a renewal (renewed every third of it). A standby takes over at most about this long plus a sixth after the leader dies (docs/cluster.md)',
    3000,
    300,
    60_000,
    ' ms',
  ),
  SERVICE_REPLICAS: env.int(
    'Replicated services in a partitioned log: how many replicas of this service run. Partition p is at home on the replica whose instance index (the -<n> suffix of its instance name, none = 0) equals p modulo this; a home replica takes its partitions back from the others (docs/cluster.md "Partitions")',
    1,
    1,
    64,
  ),
  OTEL_TRACES_EXPORTER: env.oneOf(
    'OpenTelemetry traces: none, otlp (OTLP/HTTP to OTEL_EXPORTER_OTLP_ENDPOINT, default http://localhost:4318) or console',
    ['none', 'otlp', 'console'] as const,
    'none',
  ),
};

export function loadConfig<S extends EnvSpec>(spec: S, source: NodeJS.ProcessEnv = process.env): ConfigOf<S> {
  const problems: { variable: string; rule: string }[] = [];
  const config: Record<string, unknown> = {};
  for (const [name, variable] of Object.entries(spec)) {
    const raw = source[name] === '' ? undefined : source[name];
    const result = variable.schema.safeParse(raw ?? variable.default);
    if (result.success) config[name] = result.data;
    else problems.push({ variable: name, rule: result.error.issues[0]?.message ?? 'invalid' });
  }
  if (problems.length) throw new ConfigError(problems);
  return config as ConfigOf<S>;
}

/** Rows for the README's configuration reference. */
export function describeConfig(spec: EnvSpec): { variable: string; default: string; description: string }[] {
  return Object.entries(spec).map(([variable, v]) => ({ variable, default: v.default ?? '', description: v.description }));
}
