import type { NatsConnection } from 'nats';
import { KeyedMutex, messageOf } from '@mesh/common';
import { outputBucketOf } from '@mesh/contracts';
import { objectStore, packExecutionOutput, putExecutionOutput, WALLET_HEADER, type OutputParts } from './object-io';

export interface OutputStoreConfig {
  /** OBJECT_TTL_MS: outputs expire this long after they are stored (the bucket's max_age). */
  ttlMs: number;
  /** OUTPUT_QUOTA_BYTES_PER_WALLET: bytes of stored outputs a wallet may hold (0 = no quota). */
  quotaBytesPerWallet: number;
  /** OUTPUT_QUOTA_RECOUNT_MS: how often the per-wallet tally is recounted from the bucket. */
  recountMs: number;
  /** TENANT_BUCKET_MAX_BYTES: max_bytes of an output bucket created here (the owner's byte quota on outputs). */
  bucketMaxBytes: number;
}

/** An output that is not stored: over the quota of its wallet or of its owner's bucket. Nothing was written. */
export class OutputRefusedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'OutputRefusedError';
  }
}

const isHeaderMap = (v: object): v is { get(name: string): unknown } => 'get' in v && typeof v.get === 'function';

/** The wallet an output object was stored for: its meta header (a record once decoded by a watch, MsgHdrs otherwise). */
export function walletOfHeaders(hdrs: unknown): string | undefined {
  if (typeof hdrs !== 'object' || hdrs === null) return undefined;
  if (isHeaderMap(hdrs)) {
    const value: unknown = hdrs.get(WALLET_HEADER);
    return typeof value === 'string' && value !== '' ? value : undefined;
  }
  for (const [key, value] of Object.entries(hdrs)) {
    if (key.toLowerCase() !== WALLET_HEADER.toLowerCase()) continue;
    const first: unknown = Array.isArray(value) ? value[0] : value;
    return typeof first === 'string' && first !== '' ? first : undefined;
  }
  return undefined;
}

/** Most objects one recount reads (bounds a recount; the rest are not counted, documented). */
const RECOUNT_OBJECTS_MAX = 1_000_000;
/** Output buckets whose per-wallet tally is kept (least recently written go; recounted when they come back). */
const TALLIED_BUCKETS_MAX = 4096;

/** JetStream's answer when a write would take a stream over its max_bytes (discard policy `new`). */
const isOverMaxBytes = (err: unknown) => /maximum bytes exceeded/i.test(messageOf(err));

/** The per-wallet tally of one output bucket. */
interface Tally {
  usage: Map<string, number>;
  countedAtMs: number;
  recounting?: Promise<void>;
  /** Bytes added per wallet while a recount runs (the recount may not see them). */
  addedDuringRecount?: Map<string, number>;
}

/**
 * Stores execution outputs in the output bucket of their owner (`mesh-output-<owner>`), under two
 * quotas, both checked on the packed size BEFORE anything is written, so a refused output leaves
 * nothing behind:
 *   - the owner's bucket max_bytes (TENANT_BUCKET_MAX_BYTES when the bucket is created here): the
 *     bucket's stored bytes plus the output must fit; JetStream enforces the same limit on the write
 *     (discard policy `new`), which catches two nodes racing past the check (nats.js then removes
 *     the chunks it wrote);
 *   - the per-wallet quota (OUTPUT_QUOTA_BYTES_PER_WALLET): the sizes of the wallet's output objects
 *     in the bucket (each tagged with its wallet), recounted from the bucket every
 *     OUTPUT_QUOTA_RECOUNT_MS, so objects that expired (OBJECT_TTL_MS) stop counting at the next
 *     recount; between recounts every output this node stores is added at once.
 * One wallet's writes are serialised on this node; other nodes' writes are seen at the next recount.
 */
export class OutputStore {
  private readonly tallies = new Map<string, Tally>();
  private readonly wallets = new KeyedMutex<string>();

  constructor(
    private readonly nc: NatsConnection,
    private readonly config: OutputStoreConfig,
  ) {}

  /** Bytes of outputs the wallet stores now in its owner's bucket, as far as this node knows (for tests and health). */
  async usedBytes(owner: string, walletId: string): Promise<number> {
    const tally = await this.fresh(outputBucketOf(owner));
    return tally.usage.get(walletId) ?? 0;
  }

  async write(owner: string, walletId: string, executionId: string, parts: OutputParts): Promise<{ bucket: string; key: string }> {
    const packed = await packExecutionOutput(parts);
    const bucket = outputBucketOf(owner);
    const os = await objectStore(this.nc, bucket, this.config.ttlMs, this.config.bucketMaxBytes);
    const quota = this.config.quotaBytesPerWallet;
    const tally = quota === 0 ? undefined : await this.fresh(bucket);
    return this.wallets.run(walletId, async () => {
      const used = tally?.usage.get(walletId) ?? 0;
      if (tally && used + packed.length > quota) {
        throw new OutputRefusedError(
          `output not stored: it is ${packed.length} bytes and wallet ${walletId} already stores ${used} bytes of outputs (kept for OBJECT_TTL_MS=${this.config.ttlMs} ms); together more than OUTPUT_QUOTA_BYTES_PER_WALLET=${quota}`,
        );
      }
      const { config, state } = (await os.status()).streamInfo;
      const refusedByBucket = () =>
        new OutputRefusedError(
          `output not stored: it is ${packed.length} bytes and the output bucket ${bucket} of ${owner} already holds ${state.bytes} of its max_bytes=${config.max_bytes} (TENANT_BUCKET_MAX_BYTES)`,
        );
      if (config.max_bytes > 0 && state.bytes + packed.length > config.max_bytes) throw refusedByBucket();
      if (tally) this.add(tally, walletId, packed.length);
      try {
        return await putExecutionOutput(os, bucket, executionId, walletId, packed);
      } catch (err) {
        if (tally) this.add(tally, walletId, -packed.length);
        if (isOverMaxBytes(err)) throw refusedByBucket();
        throw err;
      }
    });
  }

  private add(tally: Tally, walletId: string, bytes: number): void {
    tally.usage.set(walletId, Math.max(0, (tally.usage.get(walletId) ?? 0) + bytes));
    if (tally.addedDuringRecount) tally.addedDuringRecount.set(walletId, (tally.addedDuringRecount.get(walletId) ?? 0) + bytes);
  }

  private async fresh(bucket: string): Promise<Tally> {
    let tally = this.tallies.get(bucket);
    if (tally) this.tallies.delete(bucket);
    else tally = { usage: new Map(), countedAtMs: Number.NEGATIVE_INFINITY };
    // Most recently used last: the first one is the one to forget.
    this.tallies.set(bucket, tally);
    if (this.tallies.size > TALLIED_BUCKETS_MAX) this.tallies.delete(this.tallies.keys().next().value as string);
    if (Date.now() - tally.countedAtMs < this.config.recountMs) return tally;
    const t = tally;
    t.recounting ??= this.recount(bucket, t).finally(() => (t.recounting = undefined));
    await t.recounting;
    return t;
  }

  private async recount(bucket: string, tally: Tally): Promise<void> {
    tally.addedDuringRecount = new Map();
    try {
      const os = await objectStore(this.nc, bucket, this.config.ttlMs, this.config.bucketMaxBytes);
      const counted = new Map<string, number>();
      const watch = await os.watch({ includeHistory: true, ignoreDeletes: true });
      let seen = 0;
      try {
        for await (const info of watch) {
          // The watch yields null once it has delivered every object stored so far.
          if (info === null || ++seen > RECOUNT_OBJECTS_MAX) break;
          const walletId = walletOfHeaders(info.headers);
          if (walletId !== undefined && !info.deleted) counted.set(walletId, (counted.get(walletId) ?? 0) + info.size);
        }
      } finally {
        watch.stop();
      }
      // An output stored while the watch ran may or may not be in it: counted twice at worst (until the next recount), never missed.
      for (const [walletId, bytes] of tally.addedDuringRecount) counted.set(walletId, (counted.get(walletId) ?? 0) + bytes);
      tally.usage = counted;
      tally.countedAtMs = Date.now();
    } finally {
      tally.addedDuringRecount = undefined;
    }
  }
}
