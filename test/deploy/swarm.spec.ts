import { execSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect, type NatsConnection } from 'nats';
import { readMacKeyRing, verifyAudit } from '@mesh/audit';
import { TaskSucceeded } from '@mesh/contracts';
import { JetStreamEventStore, readAllPaged } from '@mesh/eventstore';
import { natsAuthOptionsFromFile, operatorCredsPath, secretsDir } from '@mesh/identity';
import { MeshClient } from '@mesh/runtime';
import { eventually, runMesh, type MeshRun } from '@mesh/testing';
import { clusterDir, stackLeftovers } from '../../cli/commands/cluster';
import { demoEnv, nodeCores } from '../../cli/commands/demo';
import { prepare, runScenario, type DemoOptions } from '../../cli/demo/scenarios';
import { docker, dockerLines, freePortRun, swarmState } from './swarm';

/**
 * Issue 15, Docker Swarm: the real `mesh cluster up` on a one-node swarm of this machine's engine
 * (initialised by it when the engine is in none), the normal scenario against the stack through its
 * published NATS port as the operator, a service container killed with `docker kill` in the middle
 * (Swarm starts a new one), the audit, then `mesh cluster down` and nothing of the stack left.
 * A unique stack name and free ports: the engine is shared. `up --build` builds the images from this
 * checkout (npm run images: minutes when the code changed, seconds when not; BENCHMARKS.md), so the
 * stack runs the code under test, never an older image left on the engine. Speed: E2E_SPEED (default 20, as test/e2e);
 * the service killed: SWARM_KILL_SERVICE (default scheduler). Every container of it is killed at once
 * (leader and standby alike), so the stack has none until Swarm starts new ones.
 */
const SPEED = Number(process.env.E2E_SPEED ?? 20);
const KILLED = process.env.SWARM_KILL_SERVICE ?? 'scheduler';
const STACK = `ci${process.pid}`;
/** `up` from a fresh clone: the images (~5 min on a loaded machine) and the deploy. */
const UP_TIMEOUT_MS = 1_500_000;
const DOWN_TIMEOUT_MS = 300_000;
const RESTART_TIMEOUT_MS = 300_000;
const SETTLE_TIMEOUT_MS = 180_000;

describe('Docker Swarm: mesh cluster up, the normal scenario with a killed service container, mesh cluster down', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'mesh-swarm-'));
  let env: NodeJS.ProcessEnv;
  let swarmBefore: string;
  let nc: NatsConnection | undefined;
  let store: JetStreamEventStore;
  let client: MeshClient;
  let up: MeshRun;
  const options: DemoOptions = {
    speed: SPEED,
    nodeCores: nodeCores(),
    image: 'mesh/task-base:latest',
    idleTimeoutMs: Number(demoEnv(SPEED).IDLE_TIMEOUT_MS),
    log: (l) => process.stdout.write(`[swarm] ${l}\n`),
  };
  const mesh = (timeoutMs: number, ...args: string[]) => runMesh(args, env, timeoutMs);

  beforeAll(async () => {
    execSync('docker info', { stdio: 'ignore' }); // a clear failure when no engine answers
    swarmBefore = swarmState();
    const port = await freePortRun(3);
    env = {
      ...process.env,
      MESH_DATA_DIR: dataDir,
      MESH_STACK: STACK,
      NATS_PORT: String(port),
      MESH_IDLE_TIMEOUT_MS: demoEnv(SPEED).IDLE_TIMEOUT_MS,
      MESH_SAMPLE_INTERVAL_MS: demoEnv(SPEED).SAMPLE_INTERVAL_MS,
    };
    const started = Date.now();
    up = await mesh(UP_TIMEOUT_MS, 'cluster', 'up', '--build', '--timeout', '900');
    process.stdout.write(`[swarm] mesh cluster up: exit ${up.code} in ${Math.round((Date.now() - started) / 1000)} s\n${up.err}${up.out}`);
    if (up.code !== 0) return; // the first test says why
    nc = await connect({
      servers: [0, 1, 2].map((i) => `nats://127.0.0.1:${port + i}`),
      name: 'swarm-test',
      ...natsAuthOptionsFromFile(operatorCredsPath(clusterDir(STACK, dataDir))),
    });
    store = await JetStreamEventStore.connect(nc, { replicas: 3 });
    client = new MeshClient(nc, 20_000);
    await prepare(client, options);
  }, UP_TIMEOUT_MS + 120_000);

  afterAll(async () => {
    await nc?.close().catch(() => undefined);
    // Whatever a failed test left: the stack down (and the swarm left if it was in none before).
    if (env && stackLeftovers(STACK).services.length + (swarmBefore === 'inactive' && swarmState() !== 'inactive' ? 1 : 0) > 0) {
      await mesh(DOWN_TIMEOUT_MS, 'cluster', 'down');
    }
    rmSync(dataDir, { recursive: true, force: true });
  }, DOWN_TIMEOUT_MS + 30_000);

  it('up deploys every service healthy, and says how the CLI reaches the stack', async () => {
    if (up.code !== 0) throw new Error(`mesh cluster up failed (${up.code}):\n${up.err}`);
    expect(up.out).toContain(`export NATS_URL=nats://127.0.0.1:${env.NATS_PORT}`);
    const status = await mesh(60_000, 'cluster', 'status', '--json');
    expect(status.code).toBe(0);
    const report = JSON.parse(status.out) as { healthy: boolean; services: { name: string; mode: string; running: number; desired: number }[] };
    expect(report.healthy).toBe(true);
    expect(report.services.map((s) => s.name.slice(STACK.length + 1)).sort()).toEqual(
      ['container-manager', 'credit-manager', 'ledger', 'nats-1', 'nats-2', 'nats-3', 'scaler', 'scheduler'].sort(),
    );
    expect(report.services.find((s) => s.name.endsWith('_container-manager'))?.mode).toBe('global');
    // The CLI itself against the stack: the variables `up` printed.
    const cli = await runMesh(['wallet', 'balance', 'provider', '--json'], {
      ...env,
      NATS_URL: (up.out.match(/NATS_URL=(\S+)/) ?? [])[1],
      MESH_CREDS: operatorCredsPath(clusterDir(STACK, dataDir)),
    });
    expect(cli.code).toBe(0);
  }, 120_000);

  it(`the normal scenario completes while Swarm replaces the killed ${KILLED} container, and the audit passes`, async () => {
    if (up.code !== 0) throw new Error('mesh cluster up failed (see the first test)');
    const service = `${STACK}_${KILLED}`;
    const running = runScenario('normal', client, store, options);
    let finished = false;
    void running.finally(() => (finished = true));
    // In the middle: once tasks have started succeeding (bounded; the scenario ending stops the wait).
    for (let polls = 0; polls < 600 && !finished; polls++) {
      let succeeded = 0;
      for await (const e of readAllPaged(store)) if (e.type === TaskSucceeded.type) succeeded++;
      if (succeeded >= 2) break;
      await sleep(1000);
    }
    expect(finished).toBe(false); // the kill lands while the scenario runs
    const victims = dockerLines('ps', '-q', '--filter', `label=com.docker.swarm.service.name=${service}`);
    expect(victims.length).toBeGreaterThan(0);
    docker('kill', ...victims);
    // Swarm starts a new container for the task, reported healthy by the image's health check.
    const replacement = await eventually(
      () =>
        dockerLines('ps', '-q', '--filter', `label=com.docker.swarm.service.name=${service}`, '--filter', 'health=healthy').find((id) => !victims.includes(id)),
      RESTART_TIMEOUT_MS,
      `a new healthy ${KILLED} container`,
    );
    process.stdout.write(`[swarm] killed ${victims.join(', ')} of ${service}; Swarm started ${replacement}\n`);

    const s = await running;
    if (!s.ok) throw new Error(`normal failed: ${s.error}\n${JSON.stringify(s)}\n${docker('service', 'logs', '--tail', '40', service)}`);
    expect(s.tasksSucceeded).toBe(9);
    expect(s.minBalance.startsWith('-')).toBe(false);

    // The books: the ledger's own audit, and the audit from the raw log with the stack's MAC keys.
    const macKeys = await readMacKeyRing(join(secretsDir(clusterDir(STACK, dataDir)), 'ledger-mac.key'));
    await eventually(async () => (await verifyAudit(store, undefined, { macKeys })).pass, SETTLE_TIMEOUT_MS, 'the audit from the log to pass');
    expect(await client.requestRaw('mesh.query.ledger.audit', {}, 120_000)).toMatchObject({ pass: true });
  }, 1_200_000);

  it(
    'down removes the stack and everything it made, and leaves a swarm it initialised',
    async () => {
      await nc?.close();
      nc = undefined;
      const down = await mesh(DOWN_TIMEOUT_MS, 'cluster', 'down');
      if (down.code !== 0) throw new Error(`mesh cluster down failed (${down.code}):\n${down.err}`);
      expect(stackLeftovers(STACK)).toEqual({ services: [], containers: [], taskContainers: [], networks: [], volumes: [], secrets: [], configs: [] });
      if (swarmBefore === 'inactive') {
        expect(swarmState()).toBe('inactive');
        // Swarm's bridge is removed too. Once in CI (a loaded machine) the engine kept a stale
        // endpoint on it after the leave (no container attached, "has active endpoints" until dockerd
        // restarts): then `down` must have said so, and nothing may be attached to it.
        if (dockerLines('network', 'ls', '-q', '--filter', 'name=^docker_gwbridge$').length > 0) {
          expect(down.err + down.out).toMatch(/docker_gwbridge still in use/);
          expect(dockerLines('network', 'inspect', 'docker_gwbridge', '--format', '{{range $id, $c := .Containers}}{{$id}} {{end}}').join('')).toBe('');
        }
      }
    },
    DOWN_TIMEOUT_MS + 30_000,
  );
});
