/**
 * Reading snapshot records back (snapshot-store.ts): each record is one JSON object with a kind `k`.
 * A snapshot is the service's own output, checked whole by its sha256, so a record that breaks these
 * readers means a bug or a schema change without a version bump: the reader throws, naming the
 * record kind and the field, and the service falls back to a full replay.
 */
export type SnapshotRecord = Record<string, unknown>;

export function isSnapshotRecord(value: unknown): value is SnapshotRecord {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export class SnapshotRecordError extends Error {}

/** Typed field readers over one record; `what` names the snapshot in errors (e.g. "ledger snapshot"). */
export class RecordReader {
  constructor(
    readonly record: SnapshotRecord,
    private readonly what: string,
  ) {}

  static of(value: unknown, what: string): RecordReader {
    if (!isSnapshotRecord(value)) throw new SnapshotRecordError(`${what}: every record must be an object`);
    return new RecordReader(value, what);
  }

  get kind(): string {
    return typeof this.record.k === 'string' ? this.record.k : '?';
  }

  /** The error to throw for `field` breaking `rule`. */
  error(field: string, rule: string): SnapshotRecordError {
    return new SnapshotRecordError(`${this.what}: ${this.kind}.${field} ${rule}`);
  }

  has(field: string): boolean {
    return this.record[field] !== undefined && this.record[field] !== null;
  }

  str(field: string): string {
    const v = this.record[field];
    if (typeof v !== 'string') throw this.error(field, 'must be a string');
    return v;
  }

  optStr(field: string): string | undefined {
    return this.has(field) ? this.str(field) : undefined;
  }

  int(field: string): number {
    const v = this.record[field];
    if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw this.error(field, 'must be an integer');
    return v;
  }

  optInt(field: string): number | undefined {
    return this.has(field) ? this.int(field) : undefined;
  }

  bool(field: string): boolean {
    const v = this.record[field];
    if (typeof v !== 'boolean') throw this.error(field, 'must be a boolean');
    return v;
  }

  /** A bigint stored as a decimal string (money, positions). */
  big(field: string): bigint {
    const v = this.str(field);
    if (!/^-?\d{1,60}$/.test(v)) throw this.error(field, 'must be a decimal integer string');
    return BigInt(v);
  }

  oneOf<T extends string>(field: string, values: readonly T[]): T {
    const v = this.str(field);
    const found = values.find((x) => x === v);
    if (found === undefined) throw this.error(field, `must be one of ${values.join(', ')}`);
    return found;
  }

  array(field: string): unknown[] {
    const v = this.record[field];
    if (!Array.isArray(v)) throw this.error(field, 'must be an array');
    return v;
  }

  strings(field: string): string[] {
    return this.array(field).map((v, i) => {
      if (typeof v !== 'string') throw this.error(`${field}.${i}`, 'must be a string');
      return v;
    });
  }

  object(field: string): RecordReader {
    const v = this.record[field];
    if (!isSnapshotRecord(v)) throw this.error(field, 'must be an object');
    return new RecordReader({ k: `${this.kind}.${field}`, ...v }, this.what);
  }
}
