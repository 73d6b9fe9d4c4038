import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect, type ConnectionOptions, type NatsConnection } from 'nats';
import type { ServiceName } from '@mesh/contracts';
import { eventually } from './nats-server';

const ROOT = join(__dirname, '..', '..');

/** One mesh service as a separate Node process (ts-node, transpile-only), as `mesh up` runs it. */
export class ServiceProcess {
  private output = '';
  readonly exited: Promise<number | null>;

  private constructor(
    readonly service: ServiceName,
    readonly child: ChildProcess,
  ) {
    child.stdout?.on('data', (c) => (this.output = (this.output + c).slice(-20_000)));
    child.stderr?.on('data', (c) => (this.output = (this.output + c).slice(-20_000)));
    this.exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
  }

  /**
   * `distDir`: run the compiled JavaScript of that build (`npm run build`'s output, as `mesh up` runs
   * it from a fresh dist/: bin/register-dist.js resolves the aliases) instead of the sources through ts-node.
   */
  static start(service: ServiceName, env: Record<string, string>, options: { distDir?: string } = {}): ServiceProcess {
    const args = options.distDir
      ? ['-r', join(ROOT, 'bin', 'register-dist.js'), join(options.distDir, 'apps', service, 'src', 'main.js')]
      : ['-r', 'ts-node/register/transpile-only', '-r', 'tsconfig-paths/register', join(ROOT, 'apps', service, 'src', 'main.ts')];
    const child = spawn(process.execPath, args, {
      cwd: ROOT,
      env: { ...process.env, LOG_LEVEL: 'warn', ...env, ...(options.distDir ? { MESH_DIST_DIR: options.distDir } : {}) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    return new ServiceProcess(service, child);
  }

  get logs(): string {
    return this.output;
  }

  /** Waits until the service answers `mesh.api.<service>.health` on `natsUrl` (`auth`: the operator's credentials on an auth-enabled server). */
  async healthy(natsUrl: string, timeoutMs = 60_000, auth: Partial<ConnectionOptions> = {}): Promise<Record<string, unknown>> {
    // Connected inside the wait: on a loaded machine (five services compiling) a first dial can time
    // out, and that is no reason to give up on the service.
    let nc: NatsConnection | undefined;
    try {
      return await eventually(
        async () => {
          if (this.child.exitCode !== null) throw new Error(`${this.service} exited with ${this.child.exitCode}: ${this.output}`);
          nc ??= await connect({ servers: natsUrl, noAsyncTraces: true, timeout: 5000, ...auth });
          const reply = await nc.request(`mesh.api.${this.service}.health`, new Uint8Array(), { timeout: 1000 }).catch(() => undefined);
          if (!reply) return undefined;
          const body = JSON.parse(Buffer.from(reply.data).toString()) as { ok: boolean; data: Record<string, unknown> };
          return body.ok ? body.data : undefined;
        },
        timeoutMs,
        `${this.service} health`,
      );
    } finally {
      await nc?.close();
    }
  }

  /** Sends `signal` and waits for the exit; a process still running after `killAfterMs` gets SIGKILL (a test must not hang on it). */
  async stop(signal: NodeJS.Signals = 'SIGTERM', killAfterMs = 15_000): Promise<number | null> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return this.exited;
    this.child.kill(signal);
    const killTimer = new AbortController();
    const kill = sleep(killAfterMs, undefined, { signal: killTimer.signal, ref: false }).then(
      () => this.child.kill('SIGKILL'),
      () => undefined,
    );
    try {
      return await this.exited;
    } finally {
      killTimer.abort();
      await kill;
    }
  }
}
