import { env } from '@mesh/config';
import { OBJECT_STORE_DEFAULTS } from '@mesh/contracts';

/** Variables of the scheduler service (in addition to the common ones in libs/config). */
export const SchedulerEnv = {
  SCHEDULER_INSTANCE: env.id('Instance name of this scheduler (for logs and health)', 'scheduler'),
  NODE_LOST_AFTER_MS: env.int(
    'A node silent (no heartbeat) for this long is declared lost and its dispatched/running tasks are requeued',
    10_000,
    500,
    600_000,
    ' ms',
  ),
  DISPATCH_INTERVAL_MS: env.int('Dispatch loop timer (it also runs on every change: submit, standing, heartbeat, task end)', 250, 10, 10_000, ' ms'),
  DISPATCH_BATCH_MAX: env.int('At most this many dispatches per loop pass (bounds one pass; the next pass follows at once)', 256, 1, 10_000),
  DISPATCH_START_TIMEOUT_MS: env.int(
    'A task dispatched this long ago whose node has not reported its start is requeued (reason infrastructure); the node skips or kills the superseded attempt',
    120_000,
    1000,
    3_600_000,
    ' ms',
  ),
  EXECUTION_LOST_AFTER_MS: env.int(
    'A task running (or dispatched and taken up) on a live node whose heartbeats have not listed its execution for this long is resolved: its recorded result is applied, or it is requeued (reason infrastructure, "execution lost"); keep it several NODE_HEARTBEAT_MS',
    30_000,
    200,
    3_600_000,
    ' ms',
  ),
  LIVENESS_CHECK_MS: env.int('How often node liveness is checked', 500, 50, 60_000, ' ms'),
  STORAGE_REFUSE_ABOVE_PCT: env.int(
    'New work (submit-task, deploy-function) is refused with storage_full while the event store uses more than this percentage of its capacity (JetStream account limit or STORAGE_CAPACITY_BYTES) or of the filesystem of JETSTREAM_STORE_DIR; running executions and usage/billing are never refused',
    90,
    0,
    100,
    ' %',
  ),
  STORAGE_CAPACITY_BYTES: env.int(
    "Capacity of the JetStream store when the account has no JetStream storage limit: set it to the nats-server's max_file_store (mesh up does); 0 = unknown",
    0,
    0,
    Number.MAX_SAFE_INTEGER,
    ' bytes',
  ),
  JETSTREAM_STORE_DIR: env.optionalString(
    "The nats-server's store directory when it is on this machine: its filesystem's usage counts too (fs.statfs); unset = not checked",
  ),
  STORAGE_CHECK_MS: env.int('A storage measurement is reused for this long by the submit/deploy guard (0 = measure on every request)', 1000, 0, 60_000, ' ms'),
  SCHEDULER_SNAPSHOT_EVERY_EVENTS: env.int(
    'A snapshot of the view is written to the KV bucket mesh-snapshots after this many view events folded (0 = not by count)',
    100_000,
    0,
    100_000_000,
  ),
  SCHEDULER_SNAPSHOT_EVERY_MS: env.int(
    'A snapshot is also written when this long has passed since the last one and view events were folded (0 = not by time)',
    300_000,
    0,
    86_400_000,
    ' ms',
  ),
  SCHEDULER_SNAPSHOT_LOAD: env.oneOf(
    'Start from the snapshot (on) or replay the whole log (off: e.g. to measure or to rule the snapshot out)',
    ['on', 'off'] as const,
    'on',
  ),
  SCHEDULER_CATCH_UP_TIMEOUT_MS: env.int(
    'Longest wait at start for the view to catch up with the log (from the snapshot, or the whole log without one) before the start fails',
    600_000,
    1000,
    86_400_000,
    ' ms',
  ),
  OBJECT_TTL_MS: env.int(
    "Inline inputs larger than an event carries (64 KiB) are stored as objects kept this long: the max_age of an input bucket the scheduler creates (set it like the container-manager's)",
    OBJECT_STORE_DEFAULTS.ttlMs,
    1000,
    366 * 86_400_000,
    ' ms',
  ),
  TENANT_BUCKET_MAX_BYTES: env.int(
    "Bytes an input bucket the scheduler creates may hold (a tenant created without one, or the operator's): as `mesh tenant create`",
    OBJECT_STORE_DEFAULTS.bucketMaxBytes,
    1024 * 1024,
    Number.MAX_SAFE_INTEGER,
    ' bytes',
  ),
  SCHEDULER_OUTPUT_CACHE_BYTES: env.int(
    'Bytes of output objects the task-output query keeps in memory (least recently read go first), so reading an output chunk by chunk reads the object once; a larger object is read again for each chunk',
    256 * 1024 * 1024,
    0,
    16 * 1024 ** 3,
    ' bytes',
  ),
};
