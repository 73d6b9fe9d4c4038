import Docker from 'dockerode';
import { randomBytes } from 'node:crypto';
import { PassThrough, type Duplex } from 'node:stream';
import { messageOf, retry, RetriesExhaustedError } from '@mesh/common';
import { CappedBuffer, captureRun, type TaskOptions, type TaskRun } from './capture';
import { containerCreateOptions, cpuQuotaFor, LABEL, memoryLimitsFor, type SandboxSpec } from './sandbox';
import type { ContainerAfterRun } from '../domain/script-end';
import { findCgroupPaths, readCgroupSync, resetMemoryMaxSync, type CgroupPaths, type CgroupReading } from './cgroup';

/** A Docker call failed because the engine did not answer (socket missing, refused, reset). */
export class DockerUnavailableError extends Error {
  constructor(what: string, cause: unknown) {
    super(`Docker engine is not answering: ${what}: ${messageOf(cause)}`, { cause });
    this.name = 'DockerUnavailableError';
  }
}

export class ImageMissingError extends Error {
  constructor(readonly image: string) {
    super(`image ${image} does not exist on this node (no registry pull is attempted)`);
    this.name = 'ImageMissingError';
  }
}

/** A field of a thrown value, when it is an object (dockerode and node:net errors carry `code` / `statusCode`). */
function fieldOf(err: unknown, name: 'code' | 'statusCode'): unknown {
  if (typeof err !== 'object' || err === null) return undefined;
  const value: unknown = Reflect.get(err, name);
  return value;
}

function isUnavailable(err: unknown): boolean {
  const code = fieldOf(err, 'code');
  return (
    (typeof code === 'string' && ['ECONNREFUSED', 'ENOENT', 'ECONNRESET', 'EPIPE', 'EACCES', 'ETIMEDOUT'].includes(code)) ||
    /socket hang up/i.test(messageOf(err))
  );
}

function statusOf(err: unknown): number | undefined {
  const status = fieldOf(err, 'statusCode');
  return typeof status === 'number' ? status : undefined;
}

function isImageMissing(err: unknown): boolean {
  return statusOf(err) === 404 && /no such image/i.test(messageOf(err));
}

/** Delay before the second attempt of a Docker call; doubles each time. */
const DOCKER_RETRY_BASE_MS = 200;

/**
 * A warm run (`docker exec`): like FIRST_RUNNER without the idle part. The wrapper outlives the
 * script and prints its exit code behind the one-time nonce ($2) on stdout and stderr, so an exec
 * killed from outside (the engine stopping or restarting kills the whole container, wrapper
 * included) ends WITHOUT a reported code and is never mistaken for the script's own exit 137.
 */
const WRAPPER = [
  'cd /work || exit 1',
  // The previous run's folder is removed when its output is collected; this is the rare fallback.
  'if [ -e job ]; then rm -rf job; fi',
  // The job tar holds job/script, job/input and job/out/: one process unpacks everything.
  'tar -x -f - || { code=$?; printf "%s:%d:%s" "$2" "$code" "$2"; printf "%s:%d:%s" "$2" "$code" "$2" >&2; exit "$code"; }',
  'printf "%s" "$1" > /work/.mesh-exec',
  // One byte on stdout says "the script starts now"; the agent strips it.
  'printf R',
  'bash /work/job/script /work/job/input /work/job/out </dev/null',
  'code=$?',
  'printf "%s:%d:%s" "$2" "$code" "$2"',
  'printf "%s:%d:%s" "$2" "$code" "$2" >&2',
  'exit "$code"',
].join('\n');

/**
 * The main process of a container started cold: runs the first task like WRAPPER, prints the exit
 * code behind the nonce ($2) on stderr, then becomes the idle process that keeps the container up.
 */
const FIRST_RUNNER = [
  'cd /work',
  'tar -x -f - || { code=$?; printf "%s:%d:%s" "$2" "$code" "$2"; printf "%s:%d:%s" "$2" "$code" "$2" >&2; exec sleep 2147483647 </dev/null >/dev/null 2>&1; }',
  'printf "%s" "$1" > /work/.mesh-exec',
  'printf R',
  'bash /work/job/script /work/job/input /work/job/out </dev/null',
  'code=$?',
  'printf "%s:%d:%s" "$2" "$code" "$2"',
  'printf "%s:%d:%s" "$2" "$code" "$2" >&2',
  'exec sleep 2147483647 </dev/null >/dev/null 2>&1',
].join('\n');

/** Collects the output folder as a tar on stdout and clears the marker: the container is clean again. */
const COLLECT = 'cd /work/job/out 2>/dev/null && tar -c -f - . ; rm -rf /work/job /work/.mesh-exec';

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

  constructor(
    socketPath: string,
    private readonly retries = 3,
  ) {
    this.docker = new Docker({ socketPath });
  }

  /** A Docker call, retried while the engine does not answer; any other failure is rethrown at once. */
  async withRetries<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await retry(`docker ${what}`, fn, { attempts: this.retries, baseDelayMs: DOCKER_RETRY_BASE_MS, retryable: isUnavailable });
    } catch (err) {
      if (err instanceof RetriesExhaustedError) throw new DockerUnavailableError(what, err.cause);
      throw err;
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
      if (isImageMissing(err)) throw new ImageMissingError(spec.image);
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

  /** Runs the task script with the job tar (script + input) on stdin; stdout/stderr captured and capped; the exit code as the wrapper reported it. */
  async startTask(dockerId: string, opts: TaskOptions): Promise<TaskRun> {
    const container = this.docker.getContainer(dockerId);
    const nonce = `MESH-END-${randomBytes(12).toString('hex')}`;
    const exec = await this.withRetries('exec', () =>
      container.exec({
        Cmd: ['bash', '-c', WRAPPER, 'mesh-task', opts.executionId, nonce],
        AttachStdin: true,
        AttachStdout: true,
        AttachStderr: true,
        Env: opts.env,
        User: opts.user,
        WorkingDir: '/work',
      }),
    );
    const stream = await exec.start({ hijack: true, stdin: true });
    // The exit code comes from the nonce only: the exec's own ExitCode (137 when the engine killed the container) would blame the script.
    return captureRun(this.docker.modem, stream, opts, nonce, async () => undefined);
  }

  /**
   * Cold start: creates the container with the first task's runner as its main process, so the
   * script starts as soon as the container does (no extra `docker exec` on the cold path). The job
   * tar goes in through the attached stdin; the runner prints the exit code behind a one-time nonce
   * on stderr, then turns into the idle `sleep` that keeps the container warm for the next tasks.
   */
  async createAndStartWithTask(spec: SandboxSpec, opts: TaskOptions): Promise<{ dockerId: string; run: TaskRun }> {
    const nonce = `MESH-END-${randomBytes(12).toString('hex')}`;
    const options = containerCreateOptions(spec);
    const create = {
      ...options,
      Entrypoint: ['bash', '-c', FIRST_RUNNER, 'mesh-first', opts.executionId, nonce],
      Cmd: [],
      Env: opts.env,
      OpenStdin: true,
      StdinOnce: true,
      AttachStdin: true,
      AttachStdout: true,
      AttachStderr: true,
    };
    let container: Docker.Container;
    try {
      container = await this.withRetries('create', () => this.docker.createContainer(create));
    } catch (err) {
      if (isImageMissing(err)) throw new ImageMissingError(spec.image);
      throw err;
    }
    try {
      // dockerode types attach() as a NodeJS.ReadWriteStream; with `hijack: true` it is the raw socket, a Duplex.
      const stream = (await container.attach({ stream: true, hijack: true, stdin: true, stdout: true, stderr: true })) as unknown as Duplex;
      const run = captureRun(this.docker.modem, stream, opts, nonce, async () => undefined);
      await this.withRetries('start', () => container.start());
      return { dockerId: container.id, run };
    } catch (err) {
      await container.remove({ force: true }).catch(() => undefined);
      throw err;
    }
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
    const stream = await exec.start({ hijack: true, stdin: false });
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

  async kill(dockerId: string): Promise<void> {
    await this.docker
      .getContainer(dockerId)
      .kill()
      .catch(() => undefined);
  }

  async remove(dockerId: string): Promise<void> {
    await this.withRetries('remove', () => this.docker.getContainer(dockerId).remove({ force: true, v: true })).catch((err) => {
      if (statusOf(err) === 404) return;
      throw err;
    });
  }

  /** After a run ended: is its container still running (a script's own end leaves it running), stopped, gone, or is the engine not answering. */
  async containerAfterRun(dockerId: string): Promise<{ state: ContainerAfterRun; oomKilled: boolean }> {
    let info: Docker.ContainerInspectInfo | undefined;
    try {
      info = await this.inspect(dockerId);
    } catch {
      return { state: 'engine-down', oomKilled: false };
    }
    if (!info) return { state: 'missing', oomKilled: false };
    const running = info.State?.Running === true && info.State.Restarting !== true;
    return { state: running ? 'running' : 'stopped', oomKilled: info.State?.OOMKilled === true };
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
      // dockerode's typings lack the `one-shot` option, and make every stats field required although
      // a stopped or cgroup-less container answers without them: both casts say what the API does.
      const stats = (await this.docker.getContainer(dockerId).stats({ stream: false, 'one-shot': true } as { stream: false })) as unknown as {
        read?: string;
        cpu_stats?: { cpu_usage?: { total_usage?: number } };
        memory_stats?: { usage?: number; max_usage?: number };
      };
      // A container that is not running answers with a zero time and zero counters: that is no
      // reading (taken as one, the counter would seem to fall to 0; found by the chaos soak).
      if (stats.read === undefined || stats.read.startsWith('0001-')) return undefined;
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
