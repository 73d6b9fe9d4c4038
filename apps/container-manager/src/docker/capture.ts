import { PassThrough, type Duplex } from 'node:stream';

/** The part of dockerode's modem that splits a multiplexed attach/exec stream into stdout and stderr. */
export interface Demuxer {
  demuxStream(stream: NodeJS.ReadableStream, stdout: NodeJS.WritableStream, stderr: NodeJS.WritableStream): void;
}

export interface TaskOptions {
  executionId: string;
  jobTar: Buffer;
  capBytes: number;
  env: string[];
  user: string;
}

export interface TaskRunResult {
  /** undefined when the exec could not be inspected (container gone). */
  exitCode: number | undefined;
  stdout: Buffer;
  stderr: Buffer;
  stdoutBytes: number;
  stderrBytes: number;
  stderrTail: string;
  /** The wrapper printed its marker: the script itself ran. */
  started: boolean;
}

export interface TaskRun {
  /** Resolves when the script starts (true) or when the run ended before it could (false). */
  started: Promise<boolean>;
  done: Promise<TaskRunResult>;
}

/**
 * Passes a stream's bytes on until `<nonce>:<code>:<nonce>` shows up, which it strips and reads the
 * exit code from. The last bytes are held back until they cannot be the start of the nonce.
 * Without a nonce it passes everything on and `exitCode` stays undefined (the end is the stream's end).
 */
export class EndNonceWatcher {
  exitCode: number | undefined;
  private pending = Buffer.alloc(0);
  private readonly pattern?: RegExp;
  private readonly holdBytes: number;

  constructor(
    nonce: string | undefined,
    private readonly sink: (b: Buffer) => void,
  ) {
    this.pattern = nonce ? new RegExp(`${nonce}:(\\d+):${nonce}`) : undefined;
    this.holdBytes = nonce ? nonce.length * 2 + 16 : 0;
  }

  push(chunk: Buffer): void {
    if (this.exitCode !== undefined) return;
    if (!this.pattern) return this.sink(chunk);
    this.pending = Buffer.concat([this.pending, chunk]);
    const match = this.pattern.exec(this.pending.toString('latin1'));
    if (match) {
      if (match.index > 0) this.sink(this.pending.subarray(0, match.index));
      this.pending = Buffer.alloc(0);
      this.exitCode = Number(match[1]);
      return;
    }
    if (this.pending.length > this.holdBytes) {
      this.sink(this.pending.subarray(0, this.pending.length - this.holdBytes));
      this.pending = this.pending.subarray(this.pending.length - this.holdBytes);
    }
  }

  flush(): void {
    if (this.pending.length) this.sink(this.pending);
    this.pending = Buffer.alloc(0);
  }
}

/** Keeps the first `cap` bytes of a stream and counts the rest (a flood costs no memory). */
export class CappedBuffer {
  private chunks: Buffer[] = [];
  private kept = 0;
  total = 0;
  private tail = Buffer.alloc(0);
  constructor(
    private readonly cap: number,
    private readonly tailBytes = 0,
  ) {}
  push(chunk: Buffer): void {
    this.total += chunk.length;
    if (this.kept < this.cap) {
      const part = chunk.subarray(0, this.cap - this.kept);
      this.chunks.push(part);
      this.kept += part.length;
    }
    if (this.tailBytes > 0) {
      this.tail = Buffer.concat([this.tail, chunk]);
      if (this.tail.length > this.tailBytes) this.tail = this.tail.subarray(this.tail.length - this.tailBytes);
    }
  }
  get buffer(): Buffer {
    return Buffer.concat(this.chunks);
  }
  get tailText(): string {
    return this.tail.toString('utf8');
  }
}

/**
 * Demultiplexes a run's stdout/stderr: strips the start byte, caps both, keeps the stderr tail
 * and, for the first-task runner, watches stderr for the end nonce that carries the exit code.
 */
export function captureRun(
  modem: Demuxer,
  stream: Duplex,
  opts: TaskOptions,
  nonce: string | undefined,
  exitCodeOf: () => Promise<number | undefined>,
): TaskRun {
  const stdout = new CappedBuffer(opts.capBytes);
  const stderr = new CappedBuffer(opts.capBytes, 4096);
  const out = new PassThrough();
  const err = new PassThrough();
  let started = false;
  let resolveStarted!: (v: boolean) => void;
  const startedPromise = new Promise<boolean>((r) => (resolveStarted = r));
  let resolveEnded!: () => void;
  const ended = new Promise<void>((resolve) => (resolveEnded = resolve));
  // stdout and stderr travel separately: the end nonce is written to both, and the run is over
  // once each stream has delivered it (so no byte written before it is lost on either).
  const outWatch = new EndNonceWatcher(nonce, (b) => stdout.push(b));
  const errWatch = new EndNonceWatcher(nonce, (b) => stderr.push(b));
  const checkEnd = () => {
    if (outWatch.exitCode !== undefined && errWatch.exitCode !== undefined) resolveEnded();
  };
  let sawFirstByte = false;
  out.on('data', (chunk: Buffer) => {
    if (!sawFirstByte && chunk.length > 0) {
      sawFirstByte = true;
      // The runner prints R right before the script; anything else means it never got there.
      if (chunk[0] === 0x52) {
        started = true;
        chunk = chunk.subarray(1);
      }
      resolveStarted(started);
    }
    if (chunk.length) outWatch.push(chunk);
    checkEnd();
  });
  err.on('data', (chunk: Buffer) => {
    errWatch.push(chunk);
    checkEnd();
  });
  modem.demuxStream(stream, out, err);
  stream.once('end', resolveEnded);
  stream.once('close', resolveEnded);
  stream.once('error', () => resolveEnded());
  stream.end(opts.jobTar);
  const done = (async (): Promise<TaskRunResult> => {
    await ended;
    outWatch.flush();
    errWatch.flush();
    if (nonce) stream.destroy();
    if (!started) resolveStarted(false);
    const exitCode = errWatch.exitCode ?? outWatch.exitCode ?? (nonce ? undefined : await exitCodeOf());
    return {
      exitCode,
      stdout: stdout.buffer,
      stderr: stderr.buffer,
      stdoutBytes: stdout.total,
      stderrBytes: stderr.total,
      stderrTail: stderr.tailText,
      started,
    };
  })();
  return { started: startedPromise, done };
}
