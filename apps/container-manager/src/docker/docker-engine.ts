import Docker from 'dockerode';
import { PassThrough } from 'node:stream';
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
 * A run (`docker exec`, as the task user): unpacks the job, prints one start byte, runs the script.
 * Its exit status is the script's, and the agent reads it from the Docker API (exec inspect), not
 * from the output: there is no end marker the script could print, and no secret in its reach.
 */
const WRAPPER = [
  'cd /work || exit 1',
  // The previous run's folder is removed when its output is collected; this is the rare fallback.
  'if [ -e job ]; then rm -rf job; fi',
  // The job tar holds job/script, job/input and job/out/: one process unpacks everything.
  'tar -x -f - || exit',
  // One byte on stdout says "the script starts now"; the agent strips it.
  'printf R',
  'bash /work/job/script /work/job/input /work/job/out </dev/null',
].join('\n');

/**
 * Where the execution marker lives: a tmpfs owned by root with mode 0700, written and read by execs
 * running as root. The task (never root) can neither read nor write it, so after a restart the
 * marker says which execution the agent started last, whatever the task did.
 */
const MARKER_DIR = '/run/mesh';
const MARKER = `${MARKER_DIR}/execution`;
const MARKER_USER = '0:0';
/** $0 of the run's wrapper; its $1 is the execution id (Docker's record of the exec names the run). */
const WRAPPER_NAME = 'mesh-task';
/** Most running execs of one container looked at by `runningExecution` (one run at a time; a few probes). */
const EXECS_INSPECTED_MAX = 16;

/** Collects the output folder as a tar on stdout: the container is clean again. */
const COLLECT = 'cd /work/job/out 2>/dev/null && tar -c -f - . ; rm -rf /work/job';

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
  /** The marker write of each container's last warm run (one entry per live container, dropped at its removal). */
  private readonly marking = new Map<string, Promise<void>>();

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
  async createAndStart(spec: SandboxSpec, labels: Record<string, string> = {}): Promise<string> {
    const base = containerCreateOptions(spec);
    const options = { ...base, Labels: { ...base.Labels, ...labels } };
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

  /**
   * Runs the task script with the job tar (script + input) on stdin; stdout/stderr captured and
   * capped. What a restart learns about the run is out of the task's reach: while it runs, Docker's
   * own record of the exec (its arguments name the execution, `runningExecution`); once the script
   * started, the root-only marker is written as well (in the background: not on the start's path),
   * so a run that ended before its end was recorded is still known. A cold run's marker is the
   * container's label (`markerWritten`).
   */
  async startTask(dockerId: string, opts: TaskOptions, markerWritten = false): Promise<TaskRun> {
    const container = this.docker.getContainer(dockerId);
    // The previous run's marker is written before this run's (in the rare case it is still pending).
    await this.marking.get(dockerId);
    const exec = await this.withRetries('exec', () =>
      container.exec({
        Cmd: ['bash', '-c', WRAPPER, WRAPPER_NAME, opts.executionId],
        AttachStdin: true,
        AttachStdout: true,
        AttachStderr: true,
        Env: opts.env,
        User: opts.user,
        WorkingDir: '/work',
      }),
    );
    const stream = await exec.start({ hijack: true, stdin: true });
    // The exit code is the exec's own. When the engine killed the container it is 137 too: the
    // container's state then tells the platform's kill from the script's (classifyScriptEnd).
    const run = captureRun(this.docker.modem, stream, opts, async () => {
      const info = await exec.inspect().catch(() => undefined);
      return info && !info.Running && typeof info.ExitCode === 'number' ? info.ExitCode : undefined;
    });
    if (!markerWritten) {
      // A marker that cannot be written (container gone, engine down) is not this run's failure: while
      // it runs, the exec record names it; its end is then reported by the run itself.
      const marking = run.started.then((started) => (started ? this.writeExecutionMarker(dockerId, opts.executionId) : undefined)).catch(() => undefined);
      this.marking.set(dockerId, marking);
    }
    return run;
  }

  /**
   * The execution whose run is in progress in this container, from Docker's record of the running
   * exec (its arguments, set by startTask; the task cannot change them); undefined when none runs.
   */
  async runningExecution(dockerId: string): Promise<string | undefined> {
    const info = await this.inspect(dockerId);
    for (const execId of (info?.ExecIDs ?? []).slice(0, EXECS_INSPECTED_MAX)) {
      const exec = await this.docker
        .getExec(execId)
        .inspect()
        .catch(() => undefined);
      const args = exec?.ProcessConfig?.arguments ?? [];
      if (exec?.Running && args[0] === '-c' && args[1] === WRAPPER && args[2] === WRAPPER_NAME && args[3]) return args[3];
    }
    return undefined;
  }

  /**
   * Writes the execution marker as root and resolves as soon as the exec says "ok" (printed once the
   * file is written): the warm path waits for the first byte, not for the exec's exit to be processed.
   */
  private async writeExecutionMarker(dockerId: string, executionId: string): Promise<void> {
    const container = this.docker.getContainer(dockerId);
    const exec = await this.withRetries('exec', () =>
      container.exec({
        Cmd: ['sh', '-c', `printf %s "$1" > ${MARKER} && printf ok`, 'mesh-mark', executionId],
        AttachStdout: true,
        AttachStderr: true,
        User: MARKER_USER,
      }),
    );
    const stream = await exec.start({ hijack: true, stdin: false });
    const out = new PassThrough();
    const err = new PassThrough();
    err.resume();
    const written = await new Promise<boolean>((resolve) => {
      let seen = '';
      out.on('data', (chunk: Buffer) => {
        seen += chunk.toString('latin1');
        if (seen === 'ok') resolve(true);
      });
      stream.once('end', () => resolve(seen === 'ok'));
      stream.once('close', () => resolve(seen === 'ok'));
      stream.once('error', () => resolve(false));
      this.docker.modem.demuxStream(stream, out, err);
    });
    if (!written) throw new Error(`could not write the execution marker in container ${dockerId}`);
  }

  /**
   * Cold start: a new sandboxed container (idle `sleep`) labelled with the execution it is created
   * for (the label is its marker until a later run writes one: no marker exec on the cold path),
   * then the first task as a run like any other.
   */
  async createAndStartWithTask(spec: SandboxSpec, opts: TaskOptions): Promise<{ dockerId: string; run: TaskRun }> {
    const dockerId = await this.createAndStart(spec, { [LABEL.firstExecution]: opts.executionId });
    try {
      return { dockerId, run: await this.startTask(dockerId, opts, true) };
    } catch (err) {
      await this.remove(dockerId).catch(() => undefined);
      throw err;
    }
  }

  /** The output folder of the last run as a tar (undefined when larger than maxBytes). */
  async collectOutput(dockerId: string, user: string, maxBytes: number): Promise<{ tar?: Buffer; bytes: number }> {
    const result = await this.execCapture(dockerId, ['bash', '-c', COLLECT], user, maxBytes);
    if (result.total > maxBytes) return { bytes: result.total };
    return { tar: result.stdout, bytes: result.total };
  }

  /**
   * The execution the agent last started in this container (restart safety): the marker a warm run
   * wrote (out of the task's reach), else the label of the execution the container was created for.
   */
  async readExecutionMarker(dockerId: string): Promise<string | undefined> {
    const result = await this.execCapture(dockerId, ['sh', '-c', `cat ${MARKER} 2>/dev/null || true`], MARKER_USER, 4096);
    const text = result.stdout.toString('utf8').trim();
    if (text) return text;
    return (await this.inspect(dockerId))?.Config?.Labels?.[LABEL.firstExecution];
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
    this.marking.delete(dockerId);
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
    const oomKilled = info.State?.OOMKilled === true;
    if (info.State?.Running !== true || info.State.Restarting === true) return { state: 'stopped', oomKilled };
    // The engine may not have noticed yet that a container it is killing (or removing) is dead: the
    // run's exec, killed with it, can end before the inspect shows it. A new process in the container
    // is the proof of life (once its init is dead, none can start).
    const alive = await this.execCapture(dockerId, ['true'], MARKER_USER, 0).then(
      (probe) => probe.exitCode === 0,
      () => false,
    );
    return { state: alive ? 'running' : 'stopped', oomKilled };
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
