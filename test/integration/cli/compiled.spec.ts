import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, utimesSync } from 'node:fs';
import { join } from 'node:path';
import { MeshClient } from '@mesh/runtime';
import { NatsServerProcess, eventually, runMesh } from '@mesh/testing';
import { spawn, type ChildProcess } from 'node:child_process';

const ROOT = join(__dirname, '..', '..', '..');

/**
 * `npm run build` output as the mesh command uses it: the CLI and the services run compiled from
 * a fresh build (the @mesh/* aliases resolved at run time), and fall back to the sources once any
 * source is newer than the build. Built into a temporary folder under .data (MESH_DIST_DIR), not dist/.
 */
describe('mesh CLI and services, compiled', () => {
  let dist: string;
  let server: NatsServerProcess;
  let ledger: ChildProcess | undefined;
  const env = () => ({ ...process.env, MESH_DIST_DIR: dist, MESH_FROM_SOURCE: '' });
  const mesh = (...args: string[]) => runMesh(args, { ...env(), NATS_URL: server.url });

  beforeAll(async () => {
    // Inside the repository, so the compiled files find node_modules the way dist/ does.
    mkdirSync(join(ROOT, '.data'), { recursive: true });
    dist = mkdtempSync(join(ROOT, '.data', 'test-dist-'));
    // What `npm run build` runs, into the temporary folder.
    execFileSync(process.execPath, [join(ROOT, 'scripts', 'build-stamp.js'), '--start'], { env: env() });
    execFileSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(ROOT, 'tsconfig.build.json'), '--outDir', dist], {
      cwd: ROOT,
      stdio: 'inherit',
    });
    execFileSync(process.execPath, [join(ROOT, 'scripts', 'build-stamp.js')], { env: env() });
    server = await NatsServerProcess.start();
  }, 180_000);

  afterAll(async () => {
    ledger?.kill('SIGTERM');
    await server?.dispose();
    rmSync(dist, { recursive: true, force: true });
  });

  it('runs the CLI compiled from a fresh build', async () => {
    const version = await mesh('--version');
    expect(version.code).toBe(0);
    expect(version.out).toContain('compiled dist');
    const help = await mesh('wallet', '--help');
    expect(help.out).toContain('deposit');
    // A command that talks to NATS: nothing is running, so the wallet is unknown (exit 1, clear error).
    const balance = await mesh('wallet', 'balance', 'nobody');
    expect(balance.code).toBe(1);
    expect(balance.err).toMatch(/ledger|no_responders|not running/i);
  });

  it('runs a service compiled (as `mesh up` starts it) and it answers', async () => {
    ledger = spawn(process.execPath, ['-r', join(ROOT, 'bin', 'register-dist.js'), join(dist, 'apps', 'ledger', 'src', 'main.js')], {
      env: { ...env(), NATS_URL: server.url, LEDGER_HTTP_PORT: '0', LOG_LEVEL: 'warn' },
      stdio: 'inherit',
    });
    const nc = await server.connect('compiled-test');
    const client = new MeshClient(nc);
    try {
      const health = await eventually(() => client.requestRaw('mesh.api.ledger.health', {}, 2000).catch(() => undefined), 60_000, 'compiled ledger healthy');
      expect(health).toMatchObject({ service: 'ledger' });
      expect(await client.requestRaw('mesh.api.ledger.open-wallet', { walletId: 'compiled' })).toMatchObject({ walletId: 'compiled', balance: '0' });
    } finally {
      await nc.close();
    }
  });

  it('falls back to the sources once the build is older than a source file', async () => {
    const past = new Date(Date.now() - 365 * 24 * 3600 * 1000);
    utimesSync(join(dist, '.build-stamp'), past, past);
    expect((await mesh('--version')).out).toContain('from source');
  });
});
