import { cpus, hostname, totalmem } from 'node:os';
import { env } from '@mesh/config';
import { OBJECT_STORE_DEFAULTS } from '@mesh/contracts';

/** `my.host.example` -> `my-host-example`: a hostname made into a valid id. */
export function sanitizeNodeId(name: string): string {
  const id = name.replace(/[^A-Za-z0-9_-]/g, '-').slice(0, 64);
  return id.length > 0 ? id : 'node';
}

/** Variables of the container-manager service (in addition to the common ones in libs/config). */
export const ContainerManagerEnv = {
  CONTAINER_MANAGER_INSTANCE: env.id('Instance name of this container-manager (for logs and health)', 'container-manager'),
  NODE_ID: env.id('Id of this worker node; every container it creates carries it as the label mesh.node', sanitizeNodeId(hostname())),
  NODE_CPU_MILLIS: env.int('CPU this node offers, in millicores', Math.max(1, cpus().length) * 1000, 1, 1_024_000, ' millicores'),
  NODE_MEMORY_BYTES: env.int('Memory this node offers, in bytes', totalmem(), 1, 4 * 1024 ** 4, ' bytes'),
  NODE_NETWORK: env.oneOf(
    'Whether this node runs network-enabled functions; false on an engine without bridge (`mesh up --nodes N`, nodes 2..N): the scheduler places none there',
    ['true', 'false'],
    'true',
  ),
  NODE_LABELS: env.optionalString('Labels of this node as k=v pairs separated by commas, e.g. "zone=a,disk=ssd"'),
  SAMPLE_INTERVAL_MS: env.int('Resource sampling interval of every container', 1000, 250, 60_000, ' ms'),
  USAGE_APPEND_RETRY_MS: env.int(
    'How long a resource sample that the event store does not acknowledge is retried (same event id) before the process exits to reconcile',
    300_000,
    1000,
    3_600_000,
    ' ms',
  ),
  IDLE_TIMEOUT_MS: env.int('A container with no task for this long is stopped and removed', 60_000, 100, 86_400_000, ' ms'),
  NODE_HEARTBEAT_MS: env.int('Interval of the core NATS liveness heartbeat', 1000, 100, 60_000, ' ms'),
  OUTPUT_CAP_BYTES: env.int('stdout and stderr of a task are each kept up to this size', 1024 * 1024, 1024, 64 * 1024 * 1024, ' bytes'),
  OUTPUT_DIR_MAX_BYTES: env.int('Largest output folder (as a tar) stored per execution', 64 * 1024 * 1024, 1024, 1024 * 1024 * 1024, ' bytes'),
  INPUT_MAX_BYTES: env.int('Largest input item read from the object store', OBJECT_STORE_DEFAULTS.inputMaxBytes, 1024, 1024 * 1024 * 1024, ' bytes'),
  OBJECT_TTL_MS: env.int(
    'Inputs and outputs are kept this long in the object store (the max_age of every bucket the container-manager opens; existing buckets are updated)',
    OBJECT_STORE_DEFAULTS.ttlMs,
    1000,
    366 * 86_400_000,
    ' ms',
  ),
  OUTPUT_QUOTA_BYTES_PER_WALLET: env.int(
    'Bytes of stored outputs (within OBJECT_TTL_MS) one wallet may hold; an output over it is not stored and its execution fails (0 = no quota)',
    10 * 1024 ** 3,
    0,
    Number.MAX_SAFE_INTEGER,
    ' bytes',
  ),
  OUTPUT_QUOTA_RECOUNT_MS: env.int(
    "How often the per-wallet output tally is recounted from the bucket (expired outputs stop counting then; other nodes' outputs are seen then)",
    600_000,
    0,
    86_400_000,
    ' ms',
  ),
  PIDS_LIMIT: env.int('Process limit of every task container (fork bomb guard)', 256, 16, 65_536),
  WORK_TMPFS_BYTES: env.int(
    'Size of the writable /work tmpfs of a container (counts toward its memory)',
    256 * 1024 * 1024,
    1024 * 1024,
    64 * 1024 ** 3,
    ' bytes',
  ),
  MESH_BASE_IMAGE: env.string('The task base image: always on the image allow-list', 'mesh/task-base:latest'),
  CONTAINER_IMAGES_ALLOWED: env.optionalString(
    'More images tasks may run in, comma-separated exact references (e.g. "python:3.12-slim,node:22"); a dispatch naming any other image fails (image-missing, not retried)',
  ),
  TENANT_BUCKET_MAX_BYTES: env.int(
    "max_bytes of an owner's output bucket (mesh-output-<owner>) when the container-manager creates it: the owner's byte quota on stored outputs",
    1024 ** 3,
    1024,
    Number.MAX_SAFE_INTEGER,
    ' bytes',
  ),
  TASK_USER: env.string('User (uid:gid) the container and the task script run as; never root', '1000:1000'),
  DOCKER_SOCKET: env.string('Docker engine socket', '/var/run/docker.sock'),
  DOCKER_RETRIES: env.int('Attempts of a Docker call that failed because the engine did not answer', 3, 1, 10),
};
