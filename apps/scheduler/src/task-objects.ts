import { createHash } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import { nanos, type NatsConnection, type ObjectStore } from 'nats';
import { LRUCache, messageOf } from '@mesh/common';
import type { ConfigOf } from '@mesh/config';
import { DomainError, TASK_OUTPUT_CHUNK_BYTES_MAX, inputBucketOf } from '@mesh/contracts';
import { bucketReplicas } from '@mesh/eventstore';
import { NATS_CONNECTION, SERVICE_CONFIG } from '@mesh/runtime';
import type { SchedulerEnv } from './config';

type Config = ConfigOf<typeof SchedulerEnv>;

/** Buckets kept open (one per owner that stored a large input or read an output): least recently used go. */
const OPEN_BUCKETS_MAX = 1024;

/** One chunk of an output object, as the task-output query answers it (before base64). */
export interface OutputChunk {
  totalBytes: number;
  offset: number;
  bytes: Buffer;
  done: boolean;
}

/**
 * The scheduler's use of the object store, on behalf of tenants (who have no JetStream access,
 * docs/security.md): it stores an inline input too large for an event in the owner's input bucket,
 * and reads outputs in chunks for the task-output query. Output objects are cached whole in an LRU
 * bounded in bytes (SCHEDULER_OUTPUT_CACHE_BYTES), keyed by the object's nuid (a replaced object is
 * a new entry), so reading an output chunk by chunk reads it from JetStream once.
 */
@Injectable()
export class TaskObjects {
  private readonly buckets = new LRUCache<string, Promise<ObjectStore>>({ max: OPEN_BUCKETS_MAX });
  private readonly outputs?: LRUCache<string, Buffer>;
  /** Reads in flight, so concurrent chunk requests of one object read it once. */
  private readonly reading = new Map<string, Promise<Buffer>>();

  constructor(
    @Inject(NATS_CONNECTION) private readonly nc: NatsConnection,
    @Inject(SERVICE_CONFIG) private readonly config: Pick<Config, 'OBJECT_TTL_MS' | 'TENANT_BUCKET_MAX_BYTES' | 'SCHEDULER_OUTPUT_CACHE_BYTES'>,
  ) {
    const maxSize = config.SCHEDULER_OUTPUT_CACHE_BYTES;
    if (maxSize > 0) this.outputs = new LRUCache<string, Buffer>({ maxSize, maxEntrySize: maxSize, sizeCalculation: (b) => Math.max(1, b.length) });
  }

  /**
   * Stores `bytes` as an input of `owner` (tenant id or `operator`) in its input bucket, created
   * when missing with the TTL and quota `mesh tenant create` gives. The key is the content's
   * SHA-256, so a resubmitted task names the same object (its duplicate check compares inputs) and
   * storing the same input twice writes it once.
   */
  async storeInput(owner: string, bytes: Buffer): Promise<{ bucket: string; key: string }> {
    const bucket = inputBucketOf(owner);
    const key = `sha256-${createHash('sha256').update(bytes).digest('hex')}`;
    try {
      const os = await this.bucket(bucket, true);
      const existing = await os.info(key);
      if (!existing || existing.deleted || existing.size !== bytes.length) await os.putBlob({ name: key }, bytes);
    } catch (err) {
      throw new DomainError('input_not_stored', `the inline input (${bytes.length} bytes) could not be stored in ${bucket}: ${messageOf(err)}`);
    }
    return { bucket, key };
  }

  /** Bytes [offset, offset + limitBytes) of an output object (the whole object is read once, then cached). */
  async readOutputChunk(ref: { bucket: string; key: string }, offset: number, limitBytes = TASK_OUTPUT_CHUNK_BYTES_MAX): Promise<OutputChunk> {
    const data = await this.outputObject(ref);
    if (offset > data.length) {
      throw new DomainError('offset_out_of_range', `offset ${offset} is past the end of output ${ref.bucket}/${ref.key} (${data.length} bytes)`);
    }
    const end = Math.min(data.length, offset + Math.min(limitBytes, TASK_OUTPUT_CHUNK_BYTES_MAX));
    return { totalBytes: data.length, offset, bytes: data.subarray(offset, end), done: end === data.length };
  }

  private async outputObject(ref: { bucket: string; key: string }): Promise<Buffer> {
    const os = await this.bucket(ref.bucket, false);
    const info = await os.info(ref.key);
    if (!info || info.deleted)
      throw new DomainError('output_missing', `output ${ref.bucket}/${ref.key} is no longer in the object store (expired after OBJECT_TTL_MS)`);
    const cacheKey = `${ref.bucket}/${ref.key}/${info.nuid}`;
    const cached = this.outputs?.get(cacheKey);
    if (cached) return cached;
    let read = this.reading.get(cacheKey);
    if (!read) {
      read = (async () => {
        const data = await os.getBlob(ref.key);
        if (!data) throw new DomainError('output_missing', `output ${ref.bucket}/${ref.key} is no longer in the object store (expired after OBJECT_TTL_MS)`);
        const buffer = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
        this.outputs?.set(cacheKey, buffer);
        return buffer;
      })().finally(() => this.reading.delete(cacheKey));
      this.reading.set(cacheKey, read);
    }
    return read;
  }

  /**
   * Opens a bucket once; with `create`, a missing one is created (TTL OBJECT_TTL_MS, quota
   * TENANT_BUCKET_MAX_BYTES, the log's replicas). Without, a missing bucket is output_missing (nats.js would create it).
   */
  private bucket(name: string, create: boolean): Promise<ObjectStore> {
    const cacheKey = `${create ? 'w' : 'r'}:${name}`;
    let open = this.buckets.get(cacheKey);
    if (!open) {
      open = create ? this.created(name) : this.existing(name);
      open.catch(() => this.buckets.delete(cacheKey));
      this.buckets.set(cacheKey, open);
    }
    return open;
  }

  /** As every bucket of the stack: as many replicas as the log (a cluster's), the TTL and quota of `mesh tenant create`. */
  private async created(name: string): Promise<ObjectStore> {
    const replicas = await bucketReplicas(this.nc);
    return this.nc.jetstream().views.os(name, { ttl: nanos(this.config.OBJECT_TTL_MS), max_bytes: this.config.TENANT_BUCKET_MAX_BYTES, replicas });
  }

  private async existing(name: string): Promise<ObjectStore> {
    const jsm = await this.nc.jetstreamManager();
    const found = await jsm.streams.info(`OBJ_${name}`).then(
      () => true,
      (err: unknown) => {
        if (/not found/i.test(messageOf(err))) return false;
        throw err;
      },
    );
    if (!found) throw new DomainError('output_missing', `bucket ${name} does not exist`);
    return this.nc.jetstream().views.os(name);
  }
}
