import { execFile as execFileCallback, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { NatsServerProcess } from '@mesh/testing/nats-server';

/**
 * The service image (Dockerfile, scripts/images.sh) against a real nats-server: the scaler starts,
 * the image's HEALTHCHECK (a NATS health request) turns healthy, `docker stop` drains it (exit 0,
 * within the stop timeout), it runs as a non-root uid and carries no devDependencies.
 * Slow (builds the image when missing: several minutes), so it runs when the image exists or when
 * MESH_IMAGE_TEST is set.
 */
const execFile = promisify(execFileCallback);
const ROOT = join(__dirname, '..', '..');
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
  version: string;
  devDependencies: Record<string, string>;
  dependencies: Record<string, string>;
};
const IMAGE = process.env.MESH_SERVICE_IMAGE ?? `mesh/service:${pkg.version}`;
/** docker stop's grace period; runService gives up its drain after 10 s (then exit 1). */
const STOP_TIMEOUT_S = 20;
/** Image build (base + service) on a loaded machine. */
const BUILD_TIMEOUT_MS = 30 * 60_000;
/** HEALTHCHECK: 10 s interval, 30 s start period; well past the first healthy check. */
const HEALTHY_WAIT_MS = 120_000;

function imageExists(): boolean {
  try {
    execFileSync('docker', ['image', 'inspect', IMAGE], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

async function docker(...args: string[]): Promise<string> {
  return (await execFile('docker', args, { maxBuffer: 16 * 1024 * 1024 })).stdout.trim();
}

const enabled = Boolean(process.env.MESH_IMAGE_TEST) || imageExists();
const describeImage = enabled ? describe : describe.skip;
const title = enabled ? `the service image ${IMAGE}` : `the service image (skipped: ${IMAGE} is absent and MESH_IMAGE_TEST is unset; npm run images builds it)`;

describeImage(title, () => {
  let nats: NatsServerProcess;
  const container = `mesh-image-test-${randomBytes(4).toString('hex')}`;

  beforeAll(async () => {
    if (!imageExists()) execFileSync('bash', [join(ROOT, 'scripts', 'images.sh')], { stdio: 'inherit', timeout: BUILD_TIMEOUT_MS });
    nats = await NatsServerProcess.start();
  }, BUILD_TIMEOUT_MS + 60_000);

  afterAll(async () => {
    await docker('rm', '-f', container).catch(() => undefined);
    await nats?.stop();
  });

  it('refuses to start without a service name, saying which ones exist', async () => {
    const run = docker('run', '--rm', '--network', 'none', IMAGE);
    await expect(run).rejects.toMatchObject({
      code: 2,
      stderr: expect.stringContaining('one of scheduler, container-manager, credit-manager, scaler, ledger') as string,
    });
  });

  it('carries the production dependencies and no package that only the devDependencies need', async () => {
    // The lockfile marks every package only the devDependencies pull in as dev (typescript, jest...);
    // a devDependency also needed by a production one (@types/node, via dockerode) is not dev.
    const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean }> };
    const devOnly = Object.entries(lock.packages).flatMap(([path, entry]) => (path.startsWith('node_modules/') && entry.dev ? [path] : []));
    const production = Object.keys(pkg.dependencies).map((name) => `node_modules/${name}`);
    expect(devOnly).toEqual(expect.arrayContaining(['node_modules/typescript', 'node_modules/jest']));
    const script = `const fs = require('fs'); console.log(JSON.stringify(process.argv.slice(1).filter((p) => fs.existsSync('/app/' + p))))`;
    const present = JSON.parse(
      await docker('run', '--rm', '--network', 'none', '--entrypoint', 'node', IMAGE, '-e', script, ...devOnly, ...production),
    ) as string[];
    expect(present.sort()).toEqual(production.sort());
  });

  it('stops at once on SIGTERM while still starting (node as PID 1 would otherwise ignore it)', async () => {
    // A TCP server that never speaks NATS: the service's connect waits (20 s) in its start.
    const sockets = new Set<Socket>();
    let connected!: () => void;
    const reached = new Promise<void>((resolve) => (connected = resolve));
    const silent = createServer((socket) => {
      sockets.add(socket);
      connected();
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const early = `${container}-early`;
    try {
      const port = (silent.address() as AddressInfo).port;
      await docker('run', '-d', '--name', early, '--network', 'host', '-e', `NATS_URL=nats://127.0.0.1:${port}`, IMAGE, 'ledger');
      await reached;
      await docker('stop', '-t', String(STOP_TIMEOUT_S), early);
      // 143: start.js's early handler; 137 would be Docker's SIGKILL after the timeout, 1 the connect giving up.
      expect(await docker('inspect', '--format', '{{.State.ExitCode}}', early)).toBe('143');
      const logs = await execFile('docker', ['logs', early]);
      expect(logs.stderr).toContain('start: SIGTERM before ledger was ready: exiting');
    } finally {
      await docker('rm', '-f', early).catch(() => undefined);
      for (const socket of sockets) socket.destroy();
      silent.close();
    }
  });

  it('runs the scaler as a non-root uid, turns healthy through its NATS health request, and drains on docker stop', async () => {
    await docker('run', '-d', '--name', container, '--network', 'host', '-e', `NATS_URL=${nats.url}`, IMAGE, 'scaler');

    // The HEALTHCHECK result, as Docker records it: starting until the first check passes.
    let health = 'starting';
    for (const started = Date.now(); health === 'starting' && Date.now() - started < HEALTHY_WAIT_MS;) {
      await sleep(1000);
      health = await docker('inspect', '--format', '{{.State.Health.Status}}', container);
    }
    expect({ health, logs: health === 'healthy' ? '' : await docker('logs', container) }).toEqual({ health: 'healthy', logs: '' });
    // The readiness form (status ok only) answers too, from inside the container.
    await expect(docker('exec', container, 'node', '/app/infra/images/healthcheck.js', '--ready')).resolves.toBe('');

    // And it is not vacuous: with NATS out of reach it fails, saying so.
    await expect(docker('exec', '-e', 'NATS_URL=nats://127.0.0.1:1', container, 'node', '/app/infra/images/healthcheck.js')).rejects.toMatchObject({
      code: 1,
      stderr: expect.stringContaining('cannot reach NATS at nats://127.0.0.1:1') as string,
    });

    const status = await docker('exec', container, 'cat', '/proc/1/status');
    const uid = /^Uid:\s+(\d+)/m.exec(status)?.[1];
    expect(uid).toBe('10001');

    await docker('stop', '-t', String(STOP_TIMEOUT_S), container);
    // 0: runService's drain finished (137 would be Docker's SIGKILL after the timeout, 1 a failed or too long drain).
    const [exitCode, oomKilled] = (await docker('inspect', '--format', '{{.State.ExitCode}} {{.State.OOMKilled}}', container)).split(' ');
    expect({ exitCode, oomKilled }).toEqual({ exitCode: '0', oomKilled: 'false' });
    const logs = await execFile('docker', ['logs', container]);
    expect(logs.stdout + logs.stderr).toContain('SIGTERM: shutting down');
  });
});
