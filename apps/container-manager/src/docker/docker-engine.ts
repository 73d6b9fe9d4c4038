import Docker from 'dockerode';
import { PassThrough, type Duplex } from 'node:stream';
import { containerCreateOptions, cpuQuotaFor, LABEL, memoryLimitsFor, type SandboxSpec } from './sandbox';
import { findCgroupPaths, readCgroupSync, resetMemoryMaxSync, type CgroupPaths, type CgroupReading } from './cgroup';

/** A Docker call failed because the engine did not answer (socket missing, refused, reset). */
export class DockerUnavailableError extends Error {
  constructor(cause: unknown) {
    super(`Docker engine is not answering: ${(cause as Error)?.message ?? cause}`);
    this.name = 'DockerUnavailableError';
  }
}

export class ImageMissingError extends Error {
  constructor(readonly image: string) {
    super(`image ${image} does not exist on this node (no registry pull is attempted)`);
    this.name = 'ImageMissingError';
  }
}

function isUnavailable(err: unknown): boolean {
  const code = (err as { code?: string })?.code;
  return ['ECONNREFUSED', 'ENOENT', 'ECONNRESET', 'EPIPE', 'EACCES', 'ETIMEDOUT'].includes(code ?? '') || /socket hang up/i.test(String((err as Error)?.message));
}

function statusOf(err: unknown): number | undefined {
  return (err as { statusCode?: number })?.statusCode;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A script run: what the wrapper script inside the container does before `bash <script>`. */
const WRAPPER = [
  'set -e',
  'cd /work',
  // The previous run's folder is removed when its output is collected; this is the rare fallback.
  'if [ -e job ]; then rm -rf job; fi',
  // The job tar holds job/script, job/input and job/out/: one process unpacks everything.
  'tar -x -f -',
  'printf "%s" "$1" > /work/.mesh-exec',
  // One byte on stdout says "the script starts now"; the agent strips it.
  'printf R',
  'exec bash /work/job/script /work/job/input /work/job/out </dev/null',
].join('\n');

/** Collects the output folder as a tar on stdout and clears the marker: the container is clean again. */
const COLLECT = 'cd /work/job/out 2>/dev/null && tar -c -f - . ; rm -rf /work/job /work/.mesh-exec';

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

/** Keeps the first `cap` bytes of a stream and counts the rest (a flood costs no memory). */
class CappedBuffer {
  private chunks: Buffer[] = [];
  private kept = 0;
  total = 0;
  private tail = Buffer.alloc(0);
  constructor(private readonly cap: number, private readonly tailBytes = 0) {}
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

export interface OwnContainer {
  dockerId: string;
  containerId: string;
  walletId: string;
  functionId: string;
  running: boolean;
}

/** The node's Docker engine, through dockerode; every call that finds no engine is retried a bounded number of times. */
export class DockerEngine {
  readonly docker: Docker;

  constructor(socketPath: string, private readonly retries = 3) {
    this.docker = new Docker({ socketPath });
  }

  async withRetries<T>(what: string, fn: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await fn();
      } catch (err) {
        if (!isUnavailable(err)) throw err;
        if (attempt >= this.retries) throw new DockerUnavailableError(`${what}: ${(err as Error)?.message ?? err}`);
        await sleep(200 * 2 ** (attempt - 1));
      }
    }
  }

  async ping(): Promise<void> {
    await this.withRetries('ping', () => this.docker.ping());
  }

  /** Creates and starts a sandboxed warm container; returns its Docker id. */
  async createAndStart(spec: SandboxSpec): Promise<string> {
    const options = containerCreateOptions(spec);
    let container: Docker.Container;
    try {
      container = await this.withRetries('create', () => this.docker.createContainer(options));
    } catch (err) {
      if (statusOf(err) === 404 && /no such image/i.test(String((err as Error).message))) throw new ImageMissingError(spec.image);
      throw err;
    }
    try {
      await this.withRetries('start', () => container.start());
    } catch (err) {
      await container.remove({ force: true }).catch(() => undefined);
      throw err;
    }
    return container.id;
  }

  /** Runs the task script with the job tar (script + input) on stdin; stdout/stderr captured and capped. */
  async startTask(dockerId: string, opts: { executionId: string; jobTar: Buffer; capBytes: number; env: string[]; user: string }): Promise<TaskRun> {
    const container = this.docker.getContainer(dockerId);
    const exec = await this.withRetries('exec', () =>
      container.exec({ Cmd: ['bash', '-c', WRAPPER, 'mesh-task', opts.executionId], AttachStdin: true, AttachStdout: true, AttachStderr: true, Env: opts.env, User: opts.user, WorkingDir: '/work' }),
    );
    const stream = (await exec.start({ hijack: true, stdin: true })) as Duplex;
    const stdout = new CappedBuffer(opts.capBytes);
    const stderr = new CappedBuffer(opts.capBytes, 4096);
    const out = new PassThrough();
    const err = new PassThrough();
    let started = false;
    let resolveStarted!: (v: boolean) => void;
    const startedPromise = new Promise<boolean>((r) => (resolveStarted = r));
    out.on('data', (chunk: Buffer) => {
      if (!started) {
        started = true;
        resolveStarted(true);
        chunk = chunk.subarray(1);
      }
      if (chunk.length) stdout.push(chunk);
    });
    err.on('data', (chunk: Buffer) => stderr.push(chunk));
    this.docker.modem.demuxStream(stream, out, err);
    const ended = new Promise<void>((resolve) => {
      stream.once('end', resolve);
      stream.once('close', resolve);
      stream.once('error', () => resolve());
    });
    stream.end(opts.jobTar);
    const done = (async (): Promise<TaskRunResult> => {
      await ended;
      if (!started) resolveStarted(false);
      let exitCode: number | undefined;
      try {
        exitCode = (await exec.inspect()).ExitCode ?? undefined;
      } catch {
        exitCode = undefined;
      }
      return { exitCode, stdout: stdout.buffer, stderr: stderr.buffer, stdoutBytes: stdout.total, stderrBytes: stderr.total, stderrTail: stderr.tailText, started };
    })();
    return { started: startedPromise, done };
  }

  /** The output folder of the last run as a tar (undefined when larger than maxBytes). */
  async collectOutput(dockerId: string, user: string, maxBytes: number): Promise<{ tar?: Buffer; bytes: number }> {
    const result = await this.execCapture(dockerId, ['bash', '-c', COLLECT], user, maxBytes);
    if (result.total > maxBytes) return { bytes: result.total };
    return { tar: result.stdout, bytes: result.total };
  }

  /** The execution id marker left by a run that did not finish collecting (restart safety). */
  async readExecutionMarker(dockerId: string, user: string): Promise<string | undefined> {
    const result = await this.execCapture(dockerId, ['bash', '-c', 'cat /work/.mesh-exec 2>/dev/null || true'], user, 4096);
    const text = result.stdout.toString('utf8').trim();
    return text || undefined;
  }

  private async execCapture(dockerId: string, cmd: string[], user: string, cap: number): Promise<{ stdout: Buffer; total: number; exitCode?: number }> {
    const container = this.docker.getContainer(dockerId);
    const exec = await this.withRetries('exec', () => container.exec({ Cmd: cmd, AttachStdout: true, AttachStderr: true, User: user }));
    const stream = (await exec.start({ hijack: true, stdin: false })) as Duplex;
    const out = new PassThrough();
    const err = new PassThrough();
    const stdout = new CappedBuffer(cap + 1);
    out.on('data', (c: Buffer) => stdout.push(c));
    err.resume();
    this.docker.modem.demuxStream(stream, out, err);
    await new Promise<void>((resolve) => {
      stream.once('end', resolve);
      stream.once('close', resolve);
      stream.once('error', () => resolve());
    });
    const exitCode = (await exec.inspect().catch(() => undefined))?.ExitCode ?? undefined;
    return { stdout: stdout.buffer, total: stdout.total, exitCode };
  }

  /** Applies CPU (CFS quota/period) and memory limits in place. */
  async updateLimits(dockerId: string, cpuMillis: number, memoryBytes: number): Promise<void> {
    // One update sets memory and memory+swap together; Docker orders the cgroup writes so that
    // memory+swap stays >= memory both when growing and when shrinking.
    const container = this.docker.getContainer(dockerId);
    await this.withRetries('update', () => container.update({ ...cpuQuotaFor(cpuMillis), ...memoryLimitsFor(memoryBytes) }));
  }

  /** Freezes the container so its counters stop moving (exact last sample); ignores a container that is not running. */
  async pause(dockerId: string): Promise<void> {
    await this.docker.getContainer(dockerId).pause().catch(() => undefined);
  }

  async kill(dockerId: string): Promise<void> {
    await this.docker.getContainer(dockerId).kill().catch(() => undefined);
  }

  async remove(dockerId: string): Promise<void> {
    await this.withRetries('remove', () => this.docker.getContainer(dockerId).remove({ force: true, v: true })).catch((err) => {
      if (statusOf(err) === 404) return;
      throw err;
    });
  }

  async inspect(dockerId: string): Promise<Docker.ContainerInspectInfo | undefined> {
    try {
      return await this.withRetries('inspect', () => this.docker.getContainer(dockerId).inspect());
    } catch (err) {
      if (statusOf(err) === 404) return undefined;
      throw err;
    }
  }

  /** Containers of this node only (label mesh.node), running or not. */
  async listOwn(nodeId: string): Promise<OwnContainer[]> {
    const list = await this.withRetries('list', () => this.docker.listContainers({ all: true, filters: { label: [`${LABEL.node}=${nodeId}`] } }));
    return list
      .filter((c) => c.Labels?.[LABEL.node] === nodeId && c.Labels?.[LABEL.container])
      .map((c) => ({
        dockerId: c.Id,
        containerId: c.Labels[LABEL.container],
        walletId: c.Labels[LABEL.wallet],
        functionId: c.Labels[LABEL.function],
        running: c.State === 'running' || c.State === 'paused',
      }));
  }

  /** Counters from the cgroup files (fast, exact), else from the Docker stats API. */
  async readCounters(dockerId: string, paths: CgroupPaths | undefined, withOom = false): Promise<CgroupReading | undefined> {
    if (paths) {
      const reading = readCgroupSync(paths, withOom);
      if (reading) return reading;
    }
    try {
      const stats = (await this.docker.getContainer(dockerId).stats({ stream: false, 'one-shot': true } as { stream: false })) as unknown as {
        cpu_stats?: { cpu_usage?: { total_usage?: number } };
        memory_stats?: { usage?: number; max_usage?: number };
      };
      const total = stats.cpu_stats?.cpu_usage?.total_usage;
      if (total === undefined) return undefined;
      return { cpuNanosTotal: total, memoryBytes: stats.memory_stats?.usage ?? 0, memoryBytesMax: stats.memory_stats?.max_usage };
    } catch {
      return undefined;
    }
  }

  cgroupPaths(dockerId: string): CgroupPaths | undefined {
    return findCgroupPaths(dockerId);
  }

  resetMemoryMax(paths: CgroupPaths | undefined): void {
    if (paths) resetMemoryMaxSync(paths);
  }
}
