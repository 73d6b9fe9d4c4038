import { execSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eventually, freePort, runMesh, type MeshRun } from '@mesh/testing';

/**
 * `mesh up --replicas 2 --partitions 4` as a user runs it (docs/cluster.md "Replicated services",
 * "Partitions"), on a data dir and ports of its own: provisioning (already done on this machine:
 * it finds nats-server, Docker and the base image), nats-server with the generated config and its
 * partition mapping, two processes of each replicated service; `mesh status` names the replicas,
 * the leaders and which replica runs which partition; the partition count of an existing log
 * cannot change; `mesh down` stops everything.
 */
const UP_TIMEOUT_MS = 420_000;

describe('mesh up --replicas 2 --partitions 4', () => {
  let env: NodeJS.ProcessEnv;
  let dataDir: string;
  const mesh = (args: string[], timeoutMs?: number) => runMesh(args, env, timeoutMs);
  const ok = (run: MeshRun, what: string) => {
    if (run.code !== 0) throw new Error(`${what} exited with ${run.code}:\n${run.out.slice(-4000)}\n${run.err.slice(-4000)}`);
    return run;
  };

  beforeAll(async () => {
    execSync('docker info', { stdio: 'ignore' }); // a clear failure when no engine answers
    dataDir = mkdtempSync(join(tmpdir(), 'mesh-cli-up-'));
    const natsPort = await freePort();
    env = {
      ...process.env,
      MESH_DATA_DIR: dataDir,
      MESH_FROM_SOURCE: '1',
      NATS_PORT: String(natsPort),
      NATS_URL: `nats://127.0.0.1:${natsPort}`,
      NATS_MONITOR_PORT: String(await freePort()),
      LEDGER_HTTP_PORT: '0',
      NODE_ID: `cli-up-${process.pid}`,
    };
  });

  afterAll(async () => {
    if (env) await mesh(['down'], 120_000);
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  }, 150_000);

  it('starts every service twice (the container-manager once), each partition run by its home replica; the count is fixed once the log exists; down stops it all', async () => {
    ok(await mesh(['up', '--detach', '--replicas', '2', '--partitions', '4'], UP_TIMEOUT_MS), 'mesh up');

    // Replica 0 is the service's own process (instance = the service), replica 1 `<service>-1`.
    type Status = { replicas: { instance: string; running: boolean }[]; leaders: Record<string, string> };
    const home = (service: string, p: number) => (p % 2 === 0 ? service : `${service}-1`);
    const status = await eventually(
      async () => {
        const run = JSON.parse(ok(await mesh(['status', '--json']), 'mesh status --json').out) as Status;
        const atHome = ['ledger', 'credit-manager', 'scaler'].every((s) => [0, 1, 2, 3].every((p) => run.leaders[`${s}.p${p}`] === home(s, p)));
        return atHome && run.replicas.every((r) => r.running) ? run : undefined;
      },
      120_000,
      'mesh status: both replicas running, every partition at home',
    );
    expect(status.replicas.map((r) => r.instance).sort()).toEqual(['credit-manager-1', 'ledger-1', 'scaler-1', 'scheduler-1']);
    // The scheduler is active/standby: a lease of its own, no partitions.
    expect(Object.keys(status.leaders).filter((key) => key.startsWith('scheduler'))).toEqual(['scheduler']);
    // The table names which partitions each replica runs.
    const text = ok(await mesh(['status']), 'mesh status').out;
    expect(text).toMatch(/PARTITIONS/);
    expect(text).toMatch(/ledger-1\s.*p1 p3/);

    // The log exists now: another partition count is refused, naming the rule.
    const refused = await mesh(['up', '--detach', '--partitions', '2']);
    expect(refused.code).toBe(1);
    expect(refused.err).toMatch(/created with 4 partition\(s\), not 2.*fixed when the log is created/);

    ok(await mesh(['down'], 120_000), 'mesh down');
    // (`mesh status` exits 1 when services are down; its JSON still lists them.)
    const after = await mesh(['status', '--json']);
    const stopped = JSON.parse(after.out) as { services: { running: boolean }[]; replicas: { running: boolean }[] };
    expect([...stopped.services, ...stopped.replicas].filter((p) => p.running)).toEqual([]);
  }, 600_000);
});
