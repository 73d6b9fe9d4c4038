import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect, type NatsConnection } from 'nats';
import { messageOf } from '@mesh/common';

/**
 * A real `nats-server -js` on a free loopback port with a temp store, for integration tests.
 * `restart()` stops and starts it on the same port and store, to test reconnects.
 */
export class NatsServerProcess {
  private child?: ChildProcess;
  private constructor(
    readonly port: number,
    readonly storeDir: string,
  ) {}

  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  static async start(): Promise<NatsServerProcess> {
    const server = new NatsServerProcess(await freePort(), mkdtempSync(join(tmpdir(), 'mesh-nats-')));
    await server.spawn();
    return server;
  }

  private async spawn(): Promise<void> {
    const bin = process.env.NATS_SERVER_BIN ?? 'nats-server';
    const child = spawn(bin, ['-js', '-a', '127.0.0.1', '-p', String(this.port), '-sd', this.storeDir], { stdio: ['ignore', 'ignore', 'pipe'] });
    this.child = child;
    let stderr = '';
    child.stderr?.on('data', (chunk) => (stderr = (stderr + chunk).slice(-4000)));
    const failed = new Promise<never>((_, reject) => {
      child.once('error', (err) => reject(new Error(`cannot start ${bin}: ${err.message}. Run: bash infra/local/provision.sh install`, { cause: err })));
      child.once('exit', (code) => reject(new Error(`nats-server exited with ${code}: ${stderr}`)));
    });
    await Promise.race([waitForPort(this.port, 10_000), failed]);
  }

  async connect(name = 'test'): Promise<NatsConnection> {
    return connect({ servers: this.url, name, maxReconnectAttempts: -1, reconnectTimeWait: 100, noAsyncTraces: true });
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGTERM');
    // SIGKILL if it has not exited within 5 s; the timer is cancelled as soon as it has.
    const killTimer = new AbortController();
    await Promise.race([
      exited,
      sleep(5000, undefined, { signal: killTimer.signal, ref: false }).then(
        () => child.kill('SIGKILL'),
        () => undefined,
      ),
    ]);
    killTimer.abort();
    await exited;
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.spawn();
  }

  async dispose(): Promise<void> {
    await this.stop();
    rmSync(this.storeDir, { recursive: true, force: true });
  }
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const address = srv.address();
      srv.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

async function waitForPort(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const nc = await connect({ servers: `nats://127.0.0.1:${port}`, timeout: 500, reconnect: false });
      await nc.close();
      return;
    } catch (err) {
      if (Date.now() > deadline) throw new Error(`nats-server did not listen on ${port} within ${timeoutMs} ms: ${messageOf(err)}`, { cause: err });
      await sleep(50);
    }
  }
}

/** Polls `check` until it returns a truthy value (bounded), for eventually-consistent assertions. */
export async function eventually<T>(check: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 15_000, what = 'condition'): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value) return value;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError ? `: ${messageOf(lastError)}` : ''}`, { cause: lastError });
    }
    await sleep(25);
  }
}
