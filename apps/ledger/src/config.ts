import { DEFAULT_MAC_KEY_FILE } from '@mesh/audit/mac-key-file';
import { env } from '@mesh/config';

/** Variables of the ledger service (in addition to the common ones in libs/config). */
export const LedgerEnv = {
  LEDGER_INSTANCE: env.id('Instance name of this ledger (for logs and health)', 'ledger'),
  DEFAULT_PROVIDER_WALLET: env.id('Provider wallet credited when a charge names none; the ledger opens it at start if missing', 'provider'),
  LEDGER_HTTP_PORT: env.int('Port of the read-only JSON HTTP server of the ledger projections (0 = off)', 8480, 0, 65535),
  LEDGER_HTTP_HOST: env.string('Address the ledger HTTP server binds to', '127.0.0.1'),
  LEDGER_DEFAULT_MAX_DEBT: env.amount('maxDebt of a user wallet opened without one (major unit)', '0.5'),
  LEDGER_DEFAULT_MIN_BALANCE: env.amount('minBalance of a user wallet opened without one (major unit)', '0'),
  LEDGER_MAC_KEY_FILE: env.string(
    'File of the secret keys the ledger MACs wallet events with (JSON, mode 0600; relative to the working directory); created with a new key on first start when missing',
    DEFAULT_MAC_KEY_FILE,
  ),
  LEDGER_SNAPSHOT_EVERY_EVENTS: env.int(
    'A snapshot of the projection (and the debits without credit) is written to the KV bucket mesh-snapshots after this many events folded (0 = not by count)',
    100_000,
    0,
    100_000_000,
  ),
  LEDGER_SNAPSHOT_EVERY_MS: env.int(
    'A snapshot is also written when this long has passed since the last one and events were folded (0 = not by time)',
    300_000,
    0,
    86_400_000,
    ' ms',
  ),
  LEDGER_SNAPSHOT_LOAD: env.oneOf(
    'Start from the snapshot (on) or replay the whole log (off: e.g. to measure or to rule the snapshot out)',
    ['on', 'off'] as const,
    'on',
  ),
  LEDGER_CREDIT_SWEEP_INTERVAL_MS: env.int(
    'How often the ledger credits the debits it has seen without their credit for a whole interval (a crash or a dead-lettered charge between the two; 0 = only at start)',
    60_000,
    0,
    86_400_000,
    ' ms',
  ),
  LEDGER_WALLET_CACHE_MAX: env.int('Wallet aggregates kept in memory (least recently used dropped beyond it)', 10000, 10, 10000000),
};
