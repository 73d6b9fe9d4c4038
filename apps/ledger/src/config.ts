import { DEFAULT_HTTP_TOKEN_KEY_FILE } from '@mesh/audit/http-token';
import { DEFAULT_MAC_KEY_FILE } from '@mesh/audit/mac-key-file';
import { env, type EnvVar } from '@mesh/config';
import { z } from 'zod';

/** A comma list of host names (letters, digits, dots, dashes; or a bracketed IPv6 address), lower-cased; empty by default. */
const hostList = (description: string): EnvVar<string[]> => ({
  schema: z
    .string()
    .regex(/^\s*((\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]{1,253})\s*(,\s*|$))*$/, { error: 'must be a comma list of host names such as ledger.example.com' })
    .optional()
    .transform((v) => (v ?? '').split(',').flatMap((h) => (h.trim() ? [h.trim().toLowerCase()] : []))),
  description,
});

/** Variables of the ledger service (in addition to the common ones in libs/config). */
export const LedgerEnv = {
  LEDGER_INSTANCE: env.id('Instance name of this ledger (for logs and health)', 'ledger'),
  DEFAULT_PROVIDER_WALLET: env.id('Provider wallet credited when a charge names none; the ledger opens it at start if missing', 'provider'),
  LEDGER_HTTP_PORT: env.int('Port of the read-only JSON HTTP server of the ledger projections (0 = off)', 8480, 0, 65535),
  LEDGER_HTTP_HOST: env.string('Address the ledger HTTP server binds to', '127.0.0.1'),
  LEDGER_HTTP_TOKEN_KEY_FILE: env.string(
    'File of the secret key the ledger HTTP bearer tokens are derived from (hex, mode 0600; relative to the working directory); created on first start when missing. `mesh ledger token` prints a token from it',
    DEFAULT_HTTP_TOKEN_KEY_FILE,
  ),
  LEDGER_HTTP_ALLOWED_HOSTS: hostList(
    'Host names (comma list) the ledger HTTP server answers besides localhost, 127.0.0.1 and [::1]; any other Host header is refused (DNS rebinding)',
  ),
  LEDGER_AUDIT_CONCURRENCY_MAX: env.int('Whole-log audits (NATS or HTTP) running at once; one more is refused as busy, not queued', 1, 1, 16),
  LEDGER_AUDIT_CREDIT_GRACE_MS: env.int(
    "How long the ledger's audit waits, past the log's end, for the credits of its last debits (written just after them): a charge in flight is not reported half-posted",
    10_000,
    0,
    600_000,
  ),
  TENANT_WALLETS_MAX: env.int('Wallets one tenant may open (the operator has no limit)', 16, 0, 100_000),
  TENANT_MAX_DEBT_CEILING: env.amount(
    'Highest maxDebt a tenant may give its wallets at open-wallet or set-policy (major unit; the operator has no ceiling)',
    '10',
  ),
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
