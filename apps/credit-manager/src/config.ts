import { env } from '@mesh/config';

/** Variables of the credit-manager service (in addition to the common ones in libs/config). */
export const CreditManagerEnv = {
  CREDIT_MANAGER_INSTANCE: env.id('Instance name of this credit-manager (for logs and health)', 'credit-manager'),
  DEFAULT_CPU_PRICE_PER_CORE_HOUR: env.amount('CPU price of the `default` plan per core-hour (major unit; recorded as its version 1 at the first start)', '6'),
  DEFAULT_MEMORY_PRICE_PER_GIB_HOUR: env.amount('Memory price of the `default` plan per GiB-hour (major unit; "0" = memory not priced)', '0'),
  DEFAULT_BILLING: env.oneOf(
    'Billing mode of the `default` plan: what a container used (serverless) or what it was allocated',
    ['used', 'allocated'] as const,
    'used',
  ),
  DEFAULT_PROVIDER_WALLET: env.id('Provider wallet credited for every charge (put in each UsageCharged)', 'provider'),
  CREDIT_METER_CACHE_MAX: env.int('Container meters kept in memory (least recently used dropped beyond it; reloaded from the log)', 10000, 10, 10_000_000),
  CREDIT_WALLET_CACHE_MAX: env.int('Wallet standings kept in memory (least recently used dropped beyond it; reloaded from the log)', 10000, 10, 10_000_000),
  CREDIT_PLAN_REFRESH_MS: env.int(
    'Period of re-reading the price plans from the log, for versions set through another replica (0 = never)',
    10000,
    0,
    3_600_000,
    ' ms',
  ),
  CREDIT_TASK_INDEX_MAX: env.int('Tasks whose containers are indexed for the charges query (oldest dropped beyond it)', 100000, 10, 10_000_000),
  CREDIT_SNAPSHOT_EVERY_EVENTS: env.int(
    'A snapshot of the price plans, functions and task index is written to the KV bucket mesh-snapshots after this many function/meter events folded (0 = not by count)',
    100_000,
    0,
    100_000_000,
  ),
  CREDIT_SNAPSHOT_EVERY_MS: env.int(
    'A snapshot is also written when this long has passed since the last one and events were folded (0 = not by time)',
    300_000,
    0,
    86_400_000,
    ' ms',
  ),
  CREDIT_SNAPSHOT_LOAD: env.oneOf(
    'Start from the snapshot (on) or replay the whole log (off: e.g. to measure or to rule the snapshot out)',
    ['on', 'off'] as const,
    'on',
  ),
};
