import type { NatsConnection } from 'nats';
import { KeyedMutex } from '@mesh/common';
import { OUTPUT_BUCKET } from '@mesh/contracts';
import { objectStore, packExecutionOutput, putExecutionOutput, WALLET_HEADER, type OutputParts } from './object-io';

export interface OutputStoreConfig {
  /** OBJECT_TTL_MS: outputs expire this long after they are stored (the bucket's max_age). */
  ttlMs: number;
  /** OUTPUT_QUOTA_BYTES_PER_WALLET: bytes of stored outputs a wallet may hold (0 = no quota). */
  quotaBytesPerWallet: number;
  /** OUTPUT_QUOTA_RECOUNT_MS: how often the per-wallet tally is recounted from the bucket. */
  recountMs: number;
}

/** An output that is not stored: over the quota of its wallet. Nothing was written. */
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

/**
 * Stores execution outputs under a per-wallet byte quota. The count is "what is stored now": the
 * sizes of the wallet's output objects in the bucket (each tagged with its wallet), recounted from
 * the bucket every OUTPUT_QUOTA_RECOUNT_MS, so objects that expired (OBJECT_TTL_MS) stop counting
 * at the next recount; between recounts every output this node stores is added at once. The check
 * happens on the packed size BEFORE anything is written, so a refused output leaves nothing behind.
 * One wallet's writes are serialised on this node; other nodes' writes are seen at the next recount.
 */
export class OutputStore {
  private usage = new Map<string, number>();
  private countedAtMs = Number.NEGATIVE_INFINITY;
  private recounting?: Promise<void>;
  /** Bytes added per wallet while a recount runs (the recount may not see them). */
  private addedDuringRecount?: Map<string, number>;
  private readonly wallets = new KeyedMutex<string>();

  constructor(
    private readonly nc: NatsConnection,
    private readonly config: OutputStoreConfig,
  ) {}

  /** Bytes of outputs the wallet stores now, as far as this node knows (for tests and health). */
  async usedBytes(walletId: string): Promise<number> {
    await this.fresh();
    return this.usage.get(walletId) ?? 0;
  }

  async write(walletId: string, executionId: string, parts: OutputParts): Promise<{ bucket: string; key: string }> {
    const packed = await packExecutionOutput(parts);
    const quota = this.config.quotaBytesPerWallet;
    if (quota === 0) return putExecutionOutput(this.nc, executionId, walletId, packed, this.config.ttlMs);
    await this.fresh();
    return this.wallets.run(walletId, async () => {
      const used = this.usage.get(walletId) ?? 0;
      if (used + packed.length > quota) {
        throw new OutputRefusedError(
          `output not stored: it is ${packed.length} bytes and wallet ${walletId} already stores ${used} bytes of outputs (kept for OBJECT_TTL_MS=${this.config.ttlMs} ms); together more than OUTPUT_QUOTA_BYTES_PER_WALLET=${quota}`,
        );
      }
      this.add(walletId, packed.length);
      try {
        return await putExecutionOutput(this.nc, executionId, walletId, packed, this.config.ttlMs);
      } catch (err) {
        this.add(walletId, -packed.length);
        throw err;
      }
    });
  }

  private add(walletId: string, bytes: number): void {
    this.usage.set(walletId, Math.max(0, (this.usage.get(walletId) ?? 0) + bytes));
    if (this.addedDuringRecount) this.addedDuringRecount.set(walletId, (this.addedDuringRecount.get(walletId) ?? 0) + bytes);
  }

  private async fresh(): Promise<void> {
    if (Date.now() - this.countedAtMs < this.config.recountMs) return;
    this.recounting ??= this.recount().finally(() => (this.recounting = undefined));
    await this.recounting;
  }

  private async recount(): Promise<void> {
    this.addedDuringRecount = new Map();
    try {
      const os = await objectStore(this.nc, OUTPUT_BUCKET, this.config.ttlMs);
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
      for (const [walletId, bytes] of this.addedDuringRecount) counted.set(walletId, (counted.get(walletId) ?? 0) + bytes);
      this.usage = counted;
      this.countedAtMs = Date.now();
    } finally {
      this.addedDuringRecount = undefined;
    }
  }
}
