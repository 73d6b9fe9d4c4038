import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { routeSecretPath } from '@mesh/identity';
import { eventually, freePort, stopChild } from '@mesh/testing';

/**
 * Routes of a NATS cluster authenticate (docs/cluster.md "Topology"): `infra/local/provision.sh
 * nats-cluster-up 3` (what `mesh up --nats-cluster 3` runs) gives each server's cluster block the
 * generated route-auth.conf and route URLs with the stack's route secret. The three servers route to
 * each other; a server that knows the cluster's address but not the secret is refused and stays alone.
 */
const PROVISION = join(__dirname, '..', '..', 'infra', 'local', 'provision.sh');

describe('provision.sh nats-cluster-up: routes need the route secret', () => {
  let dataDir: string;
  let env: NodeJS.ProcessEnv;
  let monitorPort: number;
  let clusterPort: number;
  let rogue: ChildProcess | undefined;
  const provision = (...args: string[]) => spawnSync('bash', [PROVISION, ...args], { env, encoding: 'utf8', timeout: 120_000 });
  const routes = async (port: number) => ((await (await fetch(`http://127.0.0.1:${port}/routez`)).json()) as { num_routes: number }).num_routes;

  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'mesh-route-auth-'));
    // Three consecutive free ports each (server i uses base + i): taken from a free one, checked by the start itself.
    [monitorPort, clusterPort] = [await freePort(), await freePort()];
    env = {
      ...process.env,
      MESH_DATA_DIR: dataDir,
      NATS_PORT: String(await freePort()),
      NATS_CLUSTER_PORT: String(clusterPort),
      NATS_MONITOR_PORT: String(monitorPort),
    };
  });

  afterAll(async () => {
    if (rogue) await stopChild(rogue);
    if (env) provision('nats-cluster-down');
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  }, 60_000);

  it('the three servers route to each other with the secret; a server without it is refused', async () => {
    const up = provision('nats-cluster-up', '3');
    expect({ status: up.status, err: up.stderr }).toMatchObject({ status: 0 });
    // The secret is the stack's, private to it.
    expect(readFileSync(routeSecretPath(dataDir), 'utf8').trim()).toMatch(/^[0-9a-f]{64}$/);
    expect(statSync(routeSecretPath(dataDir)).mode & 0o077).toBe(0);
    for (let i = 0; i < 3; i++)
      await eventually(async () => ((await routes(monitorPort + i)) === 2 ? true : undefined), 30_000, `mesh-${i} routed to the other two`);

    // A server that has the cluster's address but not the secret.
    const rogueMonitor = await freePort();
    const conf = join(dataDir, 'rogue.conf');
    writeFileSync(
      conf,
      `server_name: rogue\nhost: 127.0.0.1\nport: ${await freePort()}\nhttp_port: ${rogueMonitor}\ncluster { name: mesh, host: 127.0.0.1, port: ${await freePort()}, routes: ["nats-route://127.0.0.1:${clusterPort}"] }\n`,
    );
    rogue = spawn('nats-server', ['-c', conf], { stdio: 'ignore' });
    const log = join(dataDir, 'nats-cluster', '0', 'nats.log');
    await eventually(() => (/authentication error/.test(readFileSync(log, 'utf8')) ? true : undefined), 30_000, 'mesh-0 refusing the rogue route');
    expect(await routes(rogueMonitor)).toBe(0);
    for (let i = 0; i < 3; i++) expect(await routes(monitorPort + i)).toBe(2);
  }, 180_000);
});
