import { headers, nanos, type NatsConnection, type ObjectStore } from 'nats';
import { LRUCache } from '@mesh/common';
import { inputBucketOf, type TaskInput } from '@mesh/contracts';
import { bucketReplicas } from '@mesh/eventstore';
import { packTar, unpackTar, type TarLink } from './tar';

/**
 * Inputs and outputs live in the NATS JetStream object store, in buckets of their owner (the task's
 * tenant, or `operator`): inputs in `mesh-input-<owner>`, outputs in `mesh-output-<owner>` under the
 * execution id (tenancy.ts inputBucketOf/outputBucketOf). An output bucket is created with max_bytes
 * TENANT_BUCKET_MAX_BYTES when missing: that is the owner's byte quota on outputs. Every bucket
 * the container-manager opens has the TTL OBJECT_TTL_MS (the bucket stream's max_age; an existing
 * bucket with another max_age is updated, which drops at once what is already older). Each output
 * carries its wallet in the header `Mesh-Wallet`, which the per-wallet quota counts (output-quota.ts).
 *
 * Output object format: one tar with
 *   manifest.json   {format:1, executionId, exitCode, stdoutBytes, stderrBytes, stdoutTruncated,
 *                    stderrTruncated, filesTruncated}
 *   stdout, stderr  captured streams (each capped at OUTPUT_CAP_BYTES)
 *   out/<path>      every regular file the script left in its output folder
 */
export interface OutputManifest {
  format: 1;
  executionId: string;
  exitCode: number | null;
  stdoutBytes: number;
  stderrBytes: number;
  stdoutTruncated: boolean;
  stderrTruncated: boolean;
  /** The output folder was larger than OUTPUT_DIR_MAX_BYTES and was not kept. */
  filesTruncated: boolean;
}

export interface ExecutionOutput {
  manifest: OutputManifest;
  files: Record<string, Buffer>;
  /** Link entries under out/ (never stored by a node, which keeps regular files only; a crafted object may have them). */
  links: TarLink[];
  stdout: Buffer;
  stderr: Buffer;
}

export class InputMissingError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InputMissingError';
  }
}

/** Open buckets kept per connection (two per owner, so bounded: least recently used go). */
const OPEN_BUCKETS_MAX = 1024;
const stores = new WeakMap<NatsConnection, LRUCache<string, Promise<ObjectStore>>>();

/** The header of an output object naming the wallet it counts against (the tenant key of the quota). */
export const WALLET_HEADER = 'Mesh-Wallet';

/**
 * Opens (creating when missing) a bucket once per connection. With `ttlMs`, the bucket keeps its
 * objects that long: created with it, or updated when it exists with another max_age (buckets made
 * before TTLs existed, or by a client that did not set one).
 */
export function objectStore(nc: NatsConnection, bucket: string, ttlMs?: number, maxBytes?: number): Promise<ObjectStore> {
  let byName = stores.get(nc);
  if (!byName) {
    byName = new LRUCache<string, Promise<ObjectStore>>({ max: OPEN_BUCKETS_MAX });
    stores.set(nc, byName);
  }
  const open = byName;
  let store = open.get(bucket);
  if (!store) {
    store = openBucket(nc, bucket, ttlMs, maxBytes);
    store.catch(() => open.delete(bucket));
    open.set(bucket, store);
  }
  return store;
}

/** With `maxBytes`, a bucket created here gets that max_bytes (an existing bucket keeps its own: whoever made it chose). */
async function openBucket(nc: NatsConnection, bucket: string, ttlMs: number | undefined, maxBytes: number | undefined): Promise<ObjectStore> {
  const limit = { replicas: await bucketReplicas(nc), ...(maxBytes === undefined ? {} : { max_bytes: maxBytes }) };
  if (ttlMs === undefined) return nc.jetstream().views.os(bucket, limit);
  const maxAge = nanos(ttlMs);
  const os = await nc.jetstream().views.os(bucket, { ttl: maxAge, ...limit });
  const { config } = (await os.status()).streamInfo;
  if (config.max_age !== maxAge) {
    const jsm = await nc.jetstreamManager();
    // JetStream refuses a duplicate window longer than max_age (2 min by default, vs a short TTL).
    await jsm.streams.update(config.name, { max_age: maxAge, duplicate_window: Math.min(config.duplicate_window, maxAge) });
  }
  return os;
}

/**
 * The bytes of a task input: inline base64, or an object of the owner's input bucket (bounded by
 * maxBytes, checked on its size before any byte is read). A reference to any other bucket is refused:
 * the dispatch names the object, but only the owner's own bucket may be read for it.
 */
export async function readTaskInput(nc: NatsConnection, input: TaskInput, owner: string, maxBytes: number, ttlMs?: number): Promise<Buffer> {
  if ('inline' in input) return Buffer.from(input.inline, 'base64');
  const { bucket, key } = input.objectRef;
  const own = inputBucketOf(owner);
  if (bucket !== own) throw new InputMissingError(`input refused: ${bucket}/${key} is not in the input bucket of its owner ${owner} (${own})`);
  const os = await objectStore(nc, bucket, ttlMs);
  const info = await os.info(key);
  if (!info || info.deleted) throw new InputMissingError(`input ${bucket}/${key} does not exist`);
  if (info.size > maxBytes) throw new InputMissingError(`input ${bucket}/${key} is ${info.size} bytes, more than INPUT_MAX_BYTES=${maxBytes}`);
  const data = await os.getBlob(key);
  if (!data) throw new InputMissingError(`input ${bucket}/${key} does not exist`);
  return Buffer.from(data);
}

export interface OutputParts {
  manifest: OutputManifest;
  stdout: Buffer;
  stderr: Buffer;
  files: Record<string, Buffer>;
}

/** The output object as it will be stored (its size is known before anything is written). */
export async function packExecutionOutput(parts: OutputParts): Promise<Buffer> {
  const entries: Record<string, Buffer> = {
    'manifest.json': Buffer.from(JSON.stringify(parts.manifest)),
    stdout: parts.stdout,
    stderr: parts.stderr,
  };
  for (const [path, content] of Object.entries(parts.files)) entries[`out/${path}`] = content;
  return packTar(entries);
}

/** Stores a packed output under the execution id in an (open) output bucket, tagged with its wallet. */
export async function putExecutionOutput(
  os: ObjectStore,
  bucket: string,
  executionId: string,
  walletId: string,
  packed: Buffer,
): Promise<{ bucket: string; key: string }> {
  const h = headers();
  h.set(WALLET_HEADER, walletId);
  await os.putBlob({ name: executionId, headers: h }, packed);
  return { bucket, key: executionId };
}

/** What `mesh task output` shows: the output files, stdout and stderr of one execution. */
export async function readExecutionOutput(nc: NatsConnection, outputRef: { bucket: string; key: string }): Promise<ExecutionOutput> {
  const os = await objectStore(nc, outputRef.bucket);
  const data = await os.getBlob(outputRef.key);
  if (!data) throw new Error(`output ${outputRef.bucket}/${outputRef.key} does not exist`);
  return parseExecutionOutput(Buffer.from(data));
}

/** An output object's parts (no I/O): files and links under out/, the manifest, stdout and stderr. */
export async function parseExecutionOutput(object: Buffer): Promise<ExecutionOutput> {
  const allLinks: TarLink[] = [];
  const entries = await unpackTar(object, undefined, allLinks);
  const files: Record<string, Buffer> = {};
  for (const [path, content] of Object.entries(entries)) if (path.startsWith('out/')) files[path.slice(4)] = content;
  return {
    manifest: JSON.parse((entries['manifest.json'] ?? Buffer.from('{}')).toString('utf8')) as OutputManifest,
    files,
    links: allLinks.filter((l) => l.path.startsWith('out/')).map((l) => ({ path: l.path.slice(4), target: l.target })),
    stdout: entries.stdout ?? Buffer.alloc(0),
    stderr: entries.stderr ?? Buffer.alloc(0),
  };
}
