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
  /** The exec's exit code from the Docker API; undefined when it could not be inspected (container or engine gone) or still runs. */
  exitCode: number | undefined;
  stdout: Buffer;
  stderr: Buffer;
  stdoutBytes: number;
  stderrBytes: number;
  stderrTail: string;
  /** The wrapper printed its start byte: the script itself ran. */
  started: boolean;
}

export interface TaskRun {
  /** Resolves when the script starts (true) or when the run ended before it could (false). */
  started: Promise<boolean>;
  done: Promise<TaskRunResult>;
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
 * Demultiplexes a run's stdout/stderr: strips the start byte, caps both and keeps the stderr tail.
 * The run is over when the exec's stream ends (Docker closes it at most 2 s after the exec's process
 * exits, even when a process the script left behind still holds it); the exit code is then the
 * exec's own, from the Docker API (`exitCodeOf`): nothing the script prints can speak for it.
 */
export function captureRun(modem: Demuxer, stream: Duplex, opts: TaskOptions, exitCodeOf: () => Promise<number | undefined>): TaskRun {
  const stdout = new CappedBuffer(opts.capBytes);
  const stderr = new CappedBuffer(opts.capBytes, 4096);
  const out = new PassThrough();
  const err = new PassThrough();
  let started = false;
  let resolveStarted!: (v: boolean) => void;
  const startedPromise = new Promise<boolean>((r) => (resolveStarted = r));
  let resolveEnded!: () => void;
  const ended = new Promise<void>((resolve) => (resolveEnded = resolve));
  let sawFirstByte = false;
  out.on('data', (chunk: Buffer) => {
    if (!sawFirstByte && chunk.length > 0) {
      sawFirstByte = true;
      // The wrapper prints R right before the script (which cannot write before it); anything else means it never got there.
      if (chunk[0] === 0x52) {
        started = true;
        chunk = chunk.subarray(1);
      }
      resolveStarted(started);
    }
    if (chunk.length) stdout.push(chunk);
  });
  err.on('data', (chunk: Buffer) => stderr.push(chunk));
  modem.demuxStream(stream, out, err);
  stream.once('end', resolveEnded);
  stream.once('close', resolveEnded);
  stream.once('error', () => resolveEnded());
  stream.end(opts.jobTar);
  const done = (async (): Promise<TaskRunResult> => {
    await ended;
    stream.destroy();
    if (!started) resolveStarted(false);
    const exitCode = await exitCodeOf();
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
