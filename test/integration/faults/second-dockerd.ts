import Docker from 'dockerode';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { eventually } from '@mesh/testing';

/**
 * A private Docker engine for tests that stop or kill the engine: the machine's shared dockerd
 * runs other engineers' containers and must not be disturbed. Its own data root, exec root
 * (so its own containerd), socket and pid file; no bridge and no iptables rules (task containers
 * run with network `none`). Needs root and the `dockerd` binary.
 */
export class SecondDockerd {
  private child?: ChildProcess;
  private output = '';
  readonly socket: string;

  private constructor(readonly dir: string) {
    this.socket = join(dir, 'docker.sock');
  }

  static async start(): Promise<SecondDockerd> {
    // Short path: a unix socket path is limited to 107 bytes.
    const engine = new SecondDockerd(mkdtempSync(join(tmpdir(), 'mdk-')));
    await engine.spawn();
    return engine;
  }

  get docker(): Docker {
    return new Docker({ socketPath: this.socket });
  }

  get logs(): string {
    return this.output;
  }

  get pid(): number | undefined {
    return this.child?.exitCode === null ? this.child.pid : undefined;
  }

  async spawn(): Promise<void> {
    const bin = process.env.DOCKERD_BIN ?? 'dockerd';
    // In a network namespace of its own (unshare execs dockerd, same pid): a dockerd started with
    // --bridge=none deletes the interface `docker0` at start, the first engine's default bridge.
    const child = spawn(
      'unshare',
      [
        '--net',
        bin,
        `--data-root=${join(this.dir, 'data')}`,
        `--exec-root=${join(this.dir, 'exec')}`,
        `--host=unix://${this.socket}`,
        `--pidfile=${join(this.dir, 'dockerd.pid')}`,
        '--bridge=none',
        '--iptables=false',
        '--ip-masq=false',
        `--containerd-namespace=${this.namespace}`,
        `--containerd-plugins-namespace=${this.namespace}-plugins`,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    this.child = child;
    child.stdout?.on('data', (c) => (this.output = (this.output + c).slice(-20_000)));
    child.stderr?.on('data', (c) => (this.output = (this.output + c).slice(-20_000)));
    const failed = new Promise<never>((_, reject) => {
      child.once('error', (err) => reject(new Error(`cannot start ${bin}: ${err.message}`, { cause: err })));
      child.once('exit', (code) => reject(new Error(`dockerd exited with ${code}: ${this.output.slice(-2000)}`)));
    });
    failed.catch(() => undefined);
    const docker = this.docker;
    await Promise.race([
      eventually(
        async () =>
          docker.ping().then(
            () => true,
            () => false,
          ),
        60_000,
        'the second dockerd answering',
      ),
      failed,
    ]);
  }

  private get namespace(): string {
    return `mesh-test-${this.dir.split('-').pop()}`;
  }

  /** Copies an image from the machine's engine into this one (no registry). */
  loadImage(image: string): void {
    const saved = spawnSync('docker', ['save', image], { maxBuffer: 2 * 1024 ** 3 });
    if (saved.status !== 0) throw new Error(`docker save ${image} failed: ${saved.stderr.toString()}`);
    const loaded = spawnSync('docker', ['-H', `unix://${this.socket}`, 'load'], { input: saved.stdout });
    if (loaded.status !== 0) throw new Error(`docker load of ${image} into the second dockerd failed: ${loaded.stderr.toString()}`);
  }

  /** Sends `signal` to dockerd and waits for it to exit (SIGKILL after 30 s so a test never hangs). */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill(signal);
    const killTimer = new AbortController();
    await Promise.race([
      exited,
      sleep(30_000, undefined, { signal: killTimer.signal, ref: false }).then(
        () => child.kill('SIGKILL'),
        () => undefined,
      ),
    ]);
    killTimer.abort();
    await exited;
  }

  /** Removes every container, stops the engine and deletes its folders. */
  async dispose(): Promise<void> {
    if (this.pid !== undefined) {
      const docker = this.docker;
      for (const c of await docker.listContainers({ all: true }).catch(() => [])) {
        await docker
          .getContainer(c.Id)
          .remove({ force: true })
          .catch(() => undefined);
      }
    }
    await this.stop();
    // dockerd unmounts its layers on a clean stop; a leftover mount point makes rm fail, which is only a leak of a temp dir.
    try {
      rmSync(this.dir, { recursive: true, force: true });
    } catch {
      /* a busy leftover mount: the temp dir stays */
    }
  }
}
