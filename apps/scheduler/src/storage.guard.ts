import { statfs } from 'node:fs/promises';
import { Inject, Injectable } from '@nestjs/common';
import { StorageType, type JetStreamManager, type NatsConnection } from 'nats';
import type { ConfigOf } from '@mesh/config';
import { DomainError, STORAGE_FULL, type StorageStatus } from '@mesh/contracts';
import { NATS_CONNECTION, SERVICE_CONFIG } from '@mesh/runtime';
import type { SchedulerEnv } from './config';

type Config = ConfigOf<typeof SchedulerEnv>;

/** Most streams one measurement reads (one per function's input bucket, plus the log and a few buckets). */
const STREAMS_MAX = 100_000;

/** What was measured, before the verdict. */
export interface StorageMeasure {
  usedBytes: number;
  /** The bytes every file-stored stream holds (stream info `state.bytes`, summed). */
  accountLimitBytes: number;
  /** STORAGE_CAPACITY_BYTES (0 = unknown). */
  configuredCapacityBytes: number;
  filesystem: { path: string; totalBytes: number; availableBytes: number } | null;
  measuredAtMs: number;
}

const pct = (part: number, whole: number) => Math.round((part / whole) * 10_000) / 100;

const gib = (bytes: number) => `${(bytes / 1024 ** 3).toFixed(2)} GiB`;

/**
 * The pure verdict: refused when the JetStream store or its filesystem is ABOVE the threshold
 * (strictly: at 0 % an empty store is still accepted). The capacity is the account's limit when
 * JetStream reports one (it enforces it), else the configured one (the server's max_file_store,
 * which JetStream enforces but does not report to a client), else unknown (only the filesystem counts).
 */
export function storageVerdict(m: StorageMeasure, refuseAbovePct: number): StorageStatus {
  const [capacityBytes, capacitySource] =
    m.accountLimitBytes > 0
      ? ([m.accountLimitBytes, 'account-limit'] as const)
      : m.configuredCapacityBytes > 0
        ? ([m.configuredCapacityBytes, 'configured'] as const)
        : ([null, 'none'] as const);
  const usedPct = capacityBytes === null ? null : pct(m.usedBytes, capacityBytes);
  const filesystem =
    m.filesystem && m.filesystem.totalBytes > 0
      ? { ...m.filesystem, usedPct: pct(m.filesystem.totalBytes - m.filesystem.availableBytes, m.filesystem.totalBytes) }
      : null;
  const reasons: string[] = [];
  if (usedPct !== null && capacityBytes !== null && usedPct > refuseAbovePct) {
    reasons.push(`the event store uses ${usedPct}% of its capacity (${m.usedBytes} of ${capacityBytes} bytes, ${capacitySource})`);
  }
  if (filesystem && filesystem.usedPct > refuseAbovePct) {
    reasons.push(
      `the filesystem of ${filesystem.path} is ${filesystem.usedPct}% full (${gib(filesystem.availableBytes)} free of ${gib(filesystem.totalBytes)})`,
    );
  }
  const refusing = reasons.length > 0;
  return {
    usedBytes: m.usedBytes,
    capacityBytes,
    capacitySource,
    usedPct,
    filesystem,
    refuseAbovePct,
    refusing,
    ...(refusing
      ? {
          reason: `${reasons.join('; ')}: above STORAGE_REFUSE_ABOVE_PCT=${refuseAbovePct}%, so new work is refused until space is freed (running executions and billing continue)`,
        }
      : {}),
    measuredAtMs: m.measuredAtMs,
  };
}

/**
 * Refuses new work before the event store's disk is full: the log is the audit and must never be
 * what runs out, so the scheduler stops accepting submit-task and deploy-function (which write
 * events and lead to outputs) while executions already running finish and are billed.
 * Measurements are reused for STORAGE_CHECK_MS and concurrent requests share one.
 */
@Injectable()
export class StorageGuard {
  private last?: StorageStatus;
  private measuring?: Promise<StorageStatus>;

  constructor(
    @Inject(NATS_CONNECTION) private readonly nc: NatsConnection,
    @Inject(SERVICE_CONFIG) private readonly config: Config,
  ) {}

  /** Throws storage_full (a DomainError: nothing is written) while new work is refused. */
  async check(): Promise<void> {
    const status = await this.status();
    if (status.refusing) throw new DomainError(STORAGE_FULL, status.reason ?? 'the event store is full');
  }

  async status(): Promise<StorageStatus> {
    if (this.last && Date.now() - this.last.measuredAtMs < this.config.STORAGE_CHECK_MS) return this.last;
    this.measuring ??= this.measure().finally(() => (this.measuring = undefined));
    return this.measuring;
  }

  private async measure(): Promise<StorageStatus> {
    const jsm = await this.nc.jetstreamManager();
    const [account, usedBytes, filesystem] = await Promise.all([jsm.getAccountInfo(), this.storedBytes(jsm), this.filesystem()]);
    this.last = storageVerdict(
      {
        usedBytes,
        accountLimitBytes: account.limits.max_storage,
        configuredCapacityBytes: this.config.STORAGE_CAPACITY_BYTES,
        filesystem,
        measuredAtMs: Date.now(),
      },
      this.config.STORAGE_REFUSE_ABOVE_PCT,
    );
    return this.last;
  }

  /**
   * What the streams hold now. Not the account info's `storage`: nats-server 2.9.10 does not lower
   * it when an object is deleted (a filtered purge; measured), so it would refuse forever once high.
   */
  private async storedBytes(jsm: JetStreamManager): Promise<number> {
    let bytes = 0;
    let streams = 0;
    for await (const si of jsm.streams.list()) {
      if (si.config.storage === StorageType.File) bytes += si.state.bytes;
      if (++streams >= STREAMS_MAX) break;
    }
    return bytes;
  }

  private async filesystem(): Promise<StorageMeasure['filesystem']> {
    const path = this.config.JETSTREAM_STORE_DIR;
    if (path === undefined) return null;
    try {
      const fs = await statfs(path);
      return { path, totalBytes: fs.blocks * fs.bsize, availableBytes: fs.bavail * fs.bsize };
    } catch (err) {
      throw new Error(`JETSTREAM_STORE_DIR=${path}: cannot read its filesystem's usage`, { cause: err });
    }
  }
}
