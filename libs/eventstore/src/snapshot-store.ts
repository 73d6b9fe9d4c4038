import { createHash, randomBytes } from 'node:crypto';
import { gunzipSync, gzipSync } from 'node:zlib';
import type { KV, NatsConnection } from 'nats';
import { retry } from '@mesh/common';
import { bucketReplicas } from './jetstream/replicas';

/**
 * Snapshots of derived state (docs/operations.md, "Fast restart"): a service folds the log into a
 * view, and from time to time saves that view with the log position it covers, so a restart loads
 * it and replays only the events after that position. A snapshot is never a source of truth: a
 * missing, corrupt or incompatible one only costs a full replay.
 *
 * The state is written as records (one JSON value each, e.g. one wallet), gzip'd in chunks of at
 * most SNAPSHOT_CHUNK_RAW_BYTES of JSON: NATS KV values are limited by the server's max payload
 * (1 MiB by default), and a projection of many wallets is much larger than that. Chunks go under a
 * fresh generation id and the manifest is written last, so a reader sees the old snapshot or the
 * new one, never a mix; the old generation's chunks are purged after the switch.
 */

/** KV bucket of the snapshots (JetStream). */
export const SNAPSHOT_BUCKET = 'mesh-snapshots';
/** JSON bytes per chunk before compression (compressed, a chunk stays well under NATS's 1 MiB payload). */
export const SNAPSHOT_CHUNK_RAW_BYTES = 512 * 1024;
/** Upper bound on the chunks of one snapshot (10 000 x 512 KiB = 5 GiB of JSON): a bigger state is not snapshotted. */
export const SNAPSHOT_CHUNKS_MAX = 10_000;
/** Chunk writes in flight at once (bounds what one snapshot asks of the server while the service works). */
const CHUNK_PUTS_IN_FLIGHT = 4;
/** Per request: a chunk put to a busy server (e.g. while a replay reads the log) can take longer than the client's 5 s default. */
const KV_TIMEOUT_MS = 30_000;
/** Chunk reads in flight at once at start. */
const CHUNK_GETS_IN_FLIGHT = 16;
const KV_PUT_ATTEMPTS = 3;

/** Upper bound on one record's JSON (a record larger than a chunk is split over none: it is refused). */
export const SNAPSHOT_RECORD_MAX_BYTES = SNAPSHOT_CHUNK_RAW_BYTES;

/** What a snapshot says about itself; stored under `<key>` (the chunks under `<key>.<generation>.<n>`). */
export interface SnapshotManifest {
  /** The layout of the records, owned by the service: a reader refuses another version (full replay). */
  schemaVersion: number;
  /** Last log position folded into the state (decimal string: positions are bigint). */
  position: string;
  generation: string;
  chunks: number;
  records: number;
  /** sha256 of the compressed chunks in order (hex): a damaged or half-purged snapshot is refused. */
  sha256: string;
  /** JSON bytes of all records (for logs and the bench). */
  bytes: number;
  writtenAt: string;
}

/** Chunks of a snapshot, built synchronously from the state at one position (so no event can slip in between). */
export interface EncodedSnapshot {
  schemaVersion: number;
  position: bigint;
  chunks: Buffer[];
  records: number;
  bytes: number;
}

/** A snapshot read back: its position and its records, decoded chunk by chunk. */
export interface LoadedSnapshot {
  manifest: SnapshotManifest;
  position: bigint;
  records: unknown[];
}

/** Why a snapshot was not used; the caller logs it and replays the whole log. */
export type SnapshotLoad = { ok: true; snapshot: LoadedSnapshot } | { ok: false; reason: string };

/** Encodes records (each JSON-serializable: bigints as decimal strings) into gzip'd chunks. Throws when a record or the whole exceeds the limits. */
export function encodeSnapshot(schemaVersion: number, position: bigint, records: Iterable<unknown>): EncodedSnapshot {
  const chunks: Buffer[] = [];
  let lines: string[] = [];
  let pending = 0;
  let count = 0;
  let bytes = 0;
  const flush = () => {
    if (lines.length === 0) return;
    if (chunks.length >= SNAPSHOT_CHUNKS_MAX) throw new Error(`snapshot: more than ${SNAPSHOT_CHUNKS_MAX} chunks of ${SNAPSHOT_CHUNK_RAW_BYTES} bytes`);
    chunks.push(gzipSync(lines.join('\n'), { level: 1 }));
    lines = [];
    pending = 0;
  };
  for (const record of records) {
    const line = JSON.stringify(record);
    if (line === undefined) throw new Error(`snapshot: record ${count} is not JSON-serializable`);
    const size = Buffer.byteLength(line) + 1;
    if (size > SNAPSHOT_RECORD_MAX_BYTES) throw new Error(`snapshot: record ${count} is ${size} bytes; the limit is ${SNAPSHOT_RECORD_MAX_BYTES}`);
    if (pending + size > SNAPSHOT_CHUNK_RAW_BYTES) flush();
    lines.push(line);
    pending += size;
    bytes += size;
    count++;
  }
  flush();
  return { schemaVersion, position, chunks, records: count, bytes };
}

/** Decodes the chunks back into records (each chunk checked to be gzip of JSON lines). */
export function decodeChunks(chunks: Uint8Array[]): unknown[] {
  const records: unknown[] = [];
  for (const chunk of chunks) {
    const text = gunzipSync(chunk).toString('utf8');
    for (const line of text.split('\n')) records.push(JSON.parse(line));
  }
  return records;
}

function digest(chunks: Uint8Array[]): string {
  const hash = createHash('sha256');
  for (const c of chunks) hash.update(c);
  return hash.digest('hex');
}

/** Where snapshots are kept. `key`: `<service>.<instance-or-partition>.<name>` (KV key characters). */
export interface SnapshotStore {
  save(key: string, snapshot: EncodedSnapshot): Promise<SnapshotManifest>;
  /** The snapshot under `key` if it exists, is whole and has `schemaVersion`; otherwise why not. */
  load(key: string, schemaVersion: number): Promise<SnapshotLoad>;
  /** Removes the snapshot (manifest and chunks). */
  remove(key: string): Promise<void>;
}

const KEY_PATTERN = /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/;

function checkKey(key: string): void {
  if (!KEY_PATTERN.test(key) || key.length > 200)
    throw new Error(`snapshot key ${JSON.stringify(key)}: must be dot-separated [A-Za-z0-9_-] tokens, at most 200 characters`);
}

function manifestOf(snapshot: EncodedSnapshot): SnapshotManifest {
  return {
    schemaVersion: snapshot.schemaVersion,
    position: snapshot.position.toString(),
    generation: `g${Date.now().toString(36)}${randomBytes(4).toString('hex')}`,
    chunks: snapshot.chunks.length,
    records: snapshot.records,
    sha256: digest(snapshot.chunks),
    bytes: snapshot.bytes,
    writtenAt: new Date().toISOString(),
  };
}

/** Checks a manifest read back; returns why it is unusable, or undefined. */
function manifestProblem(value: unknown, schemaVersion: number | undefined): string | undefined {
  if (typeof value !== 'object' || value === null) return 'the manifest is not an object';
  const m = value as Partial<Record<keyof SnapshotManifest, unknown>>;
  if (schemaVersion !== undefined && m.schemaVersion !== schemaVersion) return `schema version ${String(m.schemaVersion)}, this build reads ${schemaVersion}`;
  if (typeof m.position !== 'string' || !/^\d{1,20}$/.test(m.position)) return 'the manifest position is not a decimal integer';
  if (typeof m.generation !== 'string' || !/^[A-Za-z0-9]{1,40}$/.test(m.generation)) return 'the manifest generation is malformed';
  if (typeof m.chunks !== 'number' || !Number.isInteger(m.chunks) || m.chunks < 0 || m.chunks > SNAPSHOT_CHUNKS_MAX)
    return 'the manifest chunk count is out of range';
  if (typeof m.sha256 !== 'string') return 'the manifest has no sha256';
  return undefined;
}

function parseManifest(bytes: Uint8Array, schemaVersion: number | undefined): { manifest: SnapshotManifest } | { reason: string } {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch {
    return { reason: 'the manifest is not JSON' };
  }
  const problem = manifestProblem(value, schemaVersion);
  // The checks above are the manifest's schema: what passes them has the manifest's shape.
  return problem ? { reason: problem } : { manifest: value as SnapshotManifest };
}

function loaded(manifest: SnapshotManifest, chunks: Uint8Array[]): SnapshotLoad {
  if (digest(chunks) !== manifest.sha256) return { ok: false, reason: 'the chunks do not match the manifest sha256 (damaged or partly purged)' };
  try {
    return { ok: true, snapshot: { manifest, position: BigInt(manifest.position), records: decodeChunks(chunks) } };
  } catch (err) {
    return { ok: false, reason: `the chunks do not decode: ${err instanceof Error ? err.message : String(err)}` };
  }
}

/** Snapshots in the JetStream KV bucket `mesh-snapshots` (history 1: only the latest of each key is kept). */
export class KvSnapshotStore implements SnapshotStore {
  private kv?: Promise<KV>;

  constructor(
    private readonly nc: NatsConnection,
    private readonly bucket = SNAPSHOT_BUCKET,
  ) {}

  private bucketOf(): Promise<KV> {
    this.kv ??= bucketReplicas(this.nc)
      .then((replicas) => this.nc.jetstream({ timeout: KV_TIMEOUT_MS }).views.kv(this.bucket, { history: 1, replicas }))
      .catch((err: unknown) => {
        this.kv = undefined;
        throw new Error(`snapshot bucket ${this.bucket}: cannot open it`, { cause: err });
      });
    return this.kv;
  }

  async save(key: string, snapshot: EncodedSnapshot): Promise<SnapshotManifest> {
    checkKey(key);
    const kv = await this.bucketOf();
    const manifest = manifestOf(snapshot);
    const previous = await this.readManifest(kv, key);
    // Chunks first, a few at a time (bounded in flight), then the manifest: the switch is one put.
    const put = (k: string, value: Uint8Array) => retry(`snapshot put ${k}`, () => kv.put(k, value), { attempts: KV_PUT_ATTEMPTS, baseDelayMs: 500 });
    for (let i = 0; i < snapshot.chunks.length; i += CHUNK_PUTS_IN_FLIGHT) {
      await Promise.all(snapshot.chunks.slice(i, i + CHUNK_PUTS_IN_FLIGHT).map((chunk, j) => put(`${key}.${manifest.generation}.${i + j}`, chunk)));
    }
    await put(key, Buffer.from(JSON.stringify(manifest)));
    if (previous) await this.purgeChunks(kv, key, previous);
    return manifest;
  }

  async load(key: string, schemaVersion: number): Promise<SnapshotLoad> {
    checkKey(key);
    const kv = await this.bucketOf();
    const entry = await kv.get(key);
    if (!entry || entry.operation !== 'PUT' || entry.value.length === 0) return { ok: false, reason: 'no snapshot' };
    const parsed = parseManifest(entry.value, schemaVersion);
    if ('reason' in parsed) return { ok: false, reason: parsed.reason };
    const { manifest } = parsed;
    const chunks: Uint8Array[] = [];
    // A few gets in flight at once: one round trip per chunk would dominate the start of a large snapshot.
    for (let i = 0; i < manifest.chunks; i += CHUNK_GETS_IN_FLIGHT) {
      const count = Math.min(CHUNK_GETS_IN_FLIGHT, manifest.chunks - i);
      const batch = await Promise.all(Array.from({ length: count }, (_, j) => kv.get(`${key}.${manifest.generation}.${i + j}`)));
      for (const [j, chunk] of batch.entries()) {
        if (!chunk || chunk.operation !== 'PUT') return { ok: false, reason: `chunk ${i + j} of ${manifest.chunks} is missing` };
        chunks.push(chunk.value);
      }
    }
    return loaded(manifest, chunks);
  }

  async remove(key: string): Promise<void> {
    checkKey(key);
    const kv = await this.bucketOf();
    const manifest = await this.readManifest(kv, key);
    await kv.purge(key);
    if (manifest) await this.purgeChunks(kv, key, manifest);
  }

  private async readManifest(kv: KV, key: string): Promise<SnapshotManifest | undefined> {
    const entry = await kv.get(key);
    if (!entry || entry.operation !== 'PUT' || entry.value.length === 0) return undefined;
    // Any schema version: the old generation's chunks are purged whatever build wrote them.
    const parsed = parseManifest(entry.value, undefined);
    return 'manifest' in parsed ? parsed.manifest : undefined;
  }

  private async purgeChunks(kv: KV, key: string, manifest: SnapshotManifest): Promise<void> {
    for (let i = 0; i < manifest.chunks; i++) await kv.purge(`${key}.${manifest.generation}.${i}`);
  }
}

/** Snapshots in memory (specs, the in-memory event store). */
export class InMemorySnapshotStore implements SnapshotStore {
  readonly entries = new Map<string, { manifest: SnapshotManifest; chunks: Uint8Array[] }>();

  save(key: string, snapshot: EncodedSnapshot): Promise<SnapshotManifest> {
    try {
      checkKey(key);
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
    const manifest = manifestOf(snapshot);
    this.entries.set(key, { manifest, chunks: [...snapshot.chunks] });
    return Promise.resolve(manifest);
  }

  load(key: string, schemaVersion: number): Promise<SnapshotLoad> {
    const entry = this.entries.get(key);
    if (!entry) return Promise.resolve({ ok: false, reason: 'no snapshot' });
    const problem = manifestProblem(entry.manifest, schemaVersion);
    if (problem) return Promise.resolve({ ok: false, reason: problem });
    return Promise.resolve(loaded(entry.manifest, entry.chunks));
  }

  remove(key: string): Promise<void> {
    this.entries.delete(key);
    return Promise.resolve();
  }
}

/**
 * When to snapshot: after `everyEvents` events folded or `everyMs` since the last one (whichever
 * first; 0 disables that trigger), and never two at once. The caller calls `folded()` per event and
 * `due()` to ask; `run(write)` does the write and resets the counters (a failure is the caller's to log).
 */
export class SnapshotSchedule {
  private eventsSince = 0;
  private lastAtMs: number;
  private running?: Promise<void>;

  constructor(
    private readonly everyEvents: number,
    private readonly everyMs: number,
    nowMs = Date.now(),
  ) {
    this.lastAtMs = nowMs;
  }

  folded(count = 1): void {
    this.eventsSince += count;
  }

  due(nowMs = Date.now()): boolean {
    if (this.running || this.eventsSince === 0) return false;
    return (this.everyEvents > 0 && this.eventsSince >= this.everyEvents) || (this.everyMs > 0 && nowMs - this.lastAtMs >= this.everyMs);
  }

  /** Runs one write unless one is running; resolves when it ends. */
  run(write: () => Promise<void>): Promise<void> {
    if (this.running) return this.running;
    this.eventsSince = 0;
    this.lastAtMs = Date.now();
    this.running = write().finally(() => (this.running = undefined));
    return this.running;
  }

  /** The write in flight, if any (awaited on shutdown). */
  get inFlight(): Promise<void> | undefined {
    return this.running;
  }
}
