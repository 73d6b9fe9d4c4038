import { execSync } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect, type NatsConnection } from 'nats';
import { EVENTS_STREAM, TaskSucceeded } from '@mesh/contracts';
import { verifyAudit } from '@mesh/audit';
import { JetStreamEventStore } from '@mesh/eventstore';
import { createTenantIdentity, natsAuthOptionsFromFile } from '@mesh/identity';
import { eventually, NatsClusterProcess, runMesh } from '@mesh/testing';
import { prepare, runScenario } from '../../cli/demo/scenarios';
import { readLog as readRawLog, settledBooks } from './books';
import { E2EStack } from '../e2e/stack';
import { AppendProbe } from './probe';

/**
 * Issue 14, the NATS part: three nats-servers routed as one cluster, MESH_EVENTS with 3 replicas, the
 * five services as processes given every URL. The normal scenario runs while the stream leader is
 * SIGKILLed; afterwards the raw log (read through the survivors) holds every event the writers were
 * told was written, the books balance, and the killed server, started again, holds the same log.
 * Speed: E2E_SPEED (default 20, as test/e2e). The append pause is measured by `npm run bench cluster`.
 */
const SPEED = Number(process.env.E2E_SPEED ?? 20);
const CATCH_UP_TIMEOUT_MS = 120_000;
const SETTLE_TIMEOUT_MS = 180_000;

const readLog = (stack: E2EStack) => readRawLog(stack.store);

/** For a failure message: the log's events of every task without a terminal event (type@position each). */
async function unfinishedTasks(stack: E2EStack): Promise<string> {
  const byTask = new Map<string, string[]>();
  for (const e of (await readLog(stack)).events) {
    const taskId = typeof e.data === 'object' && e.data !== null && 'taskId' in e.data ? String(e.data.taskId) : undefined;
    if (taskId) byTask.set(taskId, [...(byTask.get(taskId) ?? []), `${e.type}@${e.position}`]);
  }
  const open = [...byTask].filter(([, types]) => !types.some((t) => /^Task(Succeeded|Failed|Cancelled)@/.test(t)));
  return `unfinished tasks in the log:\n${open.map(([id, types]) => `  ${id}: ${types.join(' ')}`).join('\n')}`;
}

describe('NATS cluster of 3: the normal scenario survives a SIGKILL of the MESH_EVENTS leader', () => {
  const stack = new E2EStack(SPEED, false, 3);
  const cluster = () => stack.cluster!;

  beforeAll(async () => {
    execSync('docker info', { stdio: 'ignore' }); // a clear failure when no engine answers
    await stack.start();
    await prepare(stack.client, stack.options);
  }, 300_000);
  let probe: AppendProbe | undefined;
  afterAll(async () => {
    await probe?.stop(); // a failed test leaves it retrying against the cluster otherwise
    await stack.stop();
  }, 60_000);

  it('the services created MESH_EVENTS with 3 replicas on 3 servers', async () => {
    const info = await (await stack.store.connection.jetstreamManager()).streams.info(EVENTS_STREAM);
    expect(info.config.num_replicas).toBe(3);
    expect(info.cluster?.leader).toMatch(/^mesh-\d$/);
    expect(info.cluster?.replicas).toHaveLength(2);
  });

  it('completes, loses no acknowledged event, balances the books, and the killed server catches up', async () => {
    probe = new AppendProbe(stack.store, `test-cluster${process.pid}`).start();
    const running = runScenario('normal', stack.client, stack.store, stack.options);
    // In the middle: once tasks have started succeeding (bounded wait; the scenario failing ends it too).
    let finished = false;
    void running.finally(() => (finished = true));
    for (let polls = 0; polls < 600 && !finished; polls++) {
      const log = await readLog(stack);
      if (log.events.filter((e) => e.type === TaskSucceeded.type).length >= 2) break;
      await sleep(500);
    }
    expect(finished).toBe(false); // the kill lands while the scenario runs
    const leader = await cluster().streamLeader();
    const killed = cluster().indexOf(leader);
    await cluster().kill(killed, 'SIGKILL');
    const ackedAtKill = probe.ackedCount;

    // A service that exits (nothing restarts it here) fails the test at once, with its output.
    const exits = [...stack.services.values()].map((p) =>
      p.exited.then((code) => Promise.reject(new Error(`${p.service} exited with ${code} after ${leader} was killed:\n${p.logs.slice(-6000)}`))),
    );
    const s = await Promise.race([running, ...exits]);
    if (!s.ok) throw new Error(`normal failed: ${s.error}\n${JSON.stringify(s)}\n${await unfinishedTasks(stack)}\n${stack.logs()}`);
    expect(s.tasksSucceeded).toBe(9);
    // The probe wrote through the leader change too (appends acknowledged after the kill).
    await eventually(() => probe!.ackedCount > ackedAtKill + 50, 60_000, 'probe appends after the kill');
    const report = await probe.stop();
    console.log(`cluster: killed ${leader}; probe: ${report.acked.length} acked, ${report.errors} failed and retried, longest gap ${report.longestGapMs} ms`);
    expect(await cluster().streamLeader()).not.toBe(leader);

    // Every acknowledged probe event is in the log, once.
    const probeIds = (await stack.store.read(probe.stream)).map((e) => e.id);
    expect(new Set(probeIds).size).toBe(probeIds.length);
    const inLog = new Set(probeIds);
    expect(report.acked.filter((id) => !inLog.has(id))).toEqual([]);

    // The books from the raw log, after the stack settles (samples charged, idle container stopped).
    const { failing } = await settledBooks(stack.store, new Set([s.walletId]), SETTLE_TIMEOUT_MS);
    expect(failing).toEqual([]);
    expect((await verifyAudit(stack.store)).pass).toBe(true);
    expect(await stack.client.requestRaw('mesh.query.ledger.audit', {}, 120_000)).toMatchObject({ pass: true });

    // The killed server rejoins and holds the same log (its own store, asked on its monitoring port).
    await cluster().restart(killed);
    const jsm = await stack.store.connection.jetstreamManager();
    await eventually(
      async () => {
        const info = await jsm.streams.info(EVENTS_STREAM);
        const local = await cluster().localStreamState(killed);
        return local?.lastSeq === info.state.last_seq && (info.cluster?.replicas ?? []).every((r) => r.current) ? local : undefined;
      },
      CATCH_UP_TIMEOUT_MS,
      `${leader} caught up with the stream`,
    );
  }, 900_000);
});

describe('NATS cluster of 3 with the generated authorization block', () => {
  let cluster: NatsClusterProcess;
  beforeAll(async () => {
    cluster = await NatsClusterProcess.start({ size: 3, auth: true });
  }, 120_000);
  afterAll(async () => {
    await cluster.dispose();
  });

  it('routes form (authenticated with the route secret of the stack), the operator creates MESH_EVENTS with 3 replicas and a killed replica catches up', async () => {
    const nc = await cluster.connect('auth-cluster');
    try {
      await JetStreamEventStore.connect(nc, { replicas: 3 });
      const info = await (await nc.jetstreamManager()).streams.info(EVENTS_STREAM);
      expect(info.cluster?.replicas).toHaveLength(2);
      const leader = cluster.indexOf(info.cluster!.leader!);
      await cluster.kill(leader, 'SIGKILL');
      await cluster.restart(leader);
      await eventually(async () => (await cluster.localStreamState(leader)) !== undefined, CATCH_UP_TIMEOUT_MS, 'the replica back');
    } finally {
      await nc.close();
    }
  }, 180_000);

  it('mesh tenant create reloads every server: the new tenant connects to each one', async () => {
    const dataDir = cluster.dataDir!;
    // Written without a reload: no server knows this tenant yet (what a reload of one server only would leave on the others).
    createTenantIdentity(dataDir, 'early');
    for (let i = 0; i < cluster.size; i++) await expect(connectAs(cluster, i, 'early')).rejects.toThrow(/authorization/i);

    const run = await runMesh(['tenant', 'create', 'acme'], { ...process.env, NATS_URL: cluster.url, MESH_DATA_DIR: dataDir, MESH_FROM_SOURCE: '1' });
    expect(run).toMatchObject({ code: 0 });
    expect(run.out).toContain('tenant acme created');
    // The reload (SIGHUP) is applied by each server in its own time: wait for it, per server.
    for (let i = 0; i < cluster.size; i++) {
      for (const tenant of ['acme', 'early']) {
        const nc = await eventually(() => connectAs(cluster, i, tenant).catch(() => undefined), 30_000, `${tenant} admitted by ${cluster.nameOf(i)}`);
        await nc.close();
      }
    }
  }, 120_000);
});

/** A connection as `tenant` to server `index` only (its credentials file from the cluster's data dir). */
function connectAs(cluster: NatsClusterProcess, index: number, tenant: string): Promise<NatsConnection> {
  return connect({
    servers: cluster.urls[index],
    ignoreClusterUpdates: true,
    reconnect: false,
    timeout: 5000,
    ...natsAuthOptionsFromFile(cluster.credsPath({ kind: 'tenant', tenantId: tenant })),
  });
}
