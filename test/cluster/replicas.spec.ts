import { execSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { EVENTS_STREAM, LEASED_SERVICES, OPERATOR, TaskDispatched, isEvent, TaskSucceeded, streamName, type ServiceName } from '@mesh/contracts';
import { verifyAudit } from '@mesh/audit';
import { ConcurrencyError, JetStreamEventStore, type EventStore } from '@mesh/eventstore';
import { KvLease, readLeases } from '@mesh/runtime';
import { eventually, NatsServerProcess, ServiceProcess } from '@mesh/testing';
import { TaskHandler } from '../../apps/scheduler/src/task.handler';
import { prepare, runScenario } from '../../cli/demo/scenarios';
import { fnSpec } from '../../apps/scheduler/test/fixtures';
import { readLog, settledBooks } from './books';
import { E2EStack } from '../e2e/stack';

/**
 * Issue 14, replicated services (docs/cluster.md "Replicated services"): every service but the
 * container-manager runs as MESH_REPLICAS processes (default 2) that elect a leader through a lease
 * in the KV bucket `mesh-leases`. The normal scenario runs; mid-run the leader of each service is
 * SIGKILLed; the standbys take over, the scenario completes, and the raw log shows nothing
 * dispatched, charged or posted twice. The figures (takeover per service, scenario time) are printed;
 * `MESH_REPLICAS=1` runs the same scenario on one replica each, without the kills, for comparison.
 *
 * The log is partitioned (MESH_PARTITIONS, default 4; docs/cluster.md "Partitions"): the replicas of
 * the ledger, the credit-manager and the scaler share the per-container work, each partition at home
 * on one of them. A killed leader's partitions move to the survivor and come back when it restarts.
 * `MESH_PARTITIONS=1` runs the plain layout (one active replica per service).
 */
const SPEED = Number(process.env.E2E_SPEED ?? 20);
const REPLICAS = Number(process.env.MESH_REPLICAS ?? 2);
const PARTITIONS = Number(process.env.MESH_PARTITIONS ?? 4);
/** The services with partitioned consumers (@OnEvents partitioned: the ledger's charges, the credit-manager's and the scaler's samples). */
const PARTITIONED: readonly ServiceName[] = ['ledger', 'credit-manager', 'scaler'];
const SETTLE_TIMEOUT_MS = 180_000;
const TAKEOVER_WAIT_MS = 60_000;

describe('a leader lease in mesh-leases over a real nats-server', () => {
  let server: NatsServerProcess;
  beforeAll(async () => {
    server = await NatsServerProcess.start();
  }, 60_000);
  afterAll(async () => {
    await server.dispose();
  });

  it('gives the key to exactly one of two replicas, and to the other at once when the leader stops cleanly', async () => {
    const [ncA, ncB] = [await server.connect('lease-a'), await server.connect('lease-b')];
    const a = new KvLease(ncA, 'scheduler', 'scheduler-0', 600);
    const b = new KvLease(ncB, 'scheduler', 'scheduler-1', 600);
    const both: boolean[] = [];
    const watch = setInterval(() => both.push(a.isLeader && b.isLeader), 5);
    try {
      await a.start();
      await b.start();
      await eventually(() => a.isLeader || b.isLeader, 10_000, 'a leader');
      await sleep(1500); // several renewals and standby reads
      const [leader, standby] = a.isLeader ? [a, b] : [b, a];
      expect(standby.isLeader).toBe(false);
      await leader.stop(); // writes the lease released
      await eventually(() => standby.isLeader, 10_000, 'the standby leads');
      expect((await readLeases(ncA)).get('scheduler')).toMatchObject({ instance: standby.instance });
      expect(both.filter(Boolean)).toEqual([]);
    } finally {
      clearInterval(watch);
      await a.stop();
      await b.stop();
      await ncA.close();
      await ncB.close();
    }
  }, 60_000);

  it('the task stream refuses the second of two dispatches decided from the same version (two schedulers that both think they lead)', async () => {
    const nc = await server.connect('occ');
    try {
      const store = await JetStreamEventStore.connect(nc);
      const taskId = `occ${process.pid}`;
      await new TaskHandler(store).handle(taskId, {
        kind: 'submit',
        caller: OPERATOR,
        taskId,
        functionId: 'fn',
        walletId: 'w1',
        input: { inline: 'aGk=' },
        priority: 0,
        maxAttempts: 3,
        nowMs: Date.now(),
      });
      // Both "leaders" load the task before either appends: each decides a dispatch of attempt 1.
      let loaded = 0;
      const bothLoaded = eventually(() => loaded === 2, 10_000, 'both loads');
      const gated = new Proxy(store, {
        get(target, key, receiver) {
          if (key !== 'read') return Reflect.get(target, key, receiver) as unknown;
          return async (...args: Parameters<EventStore['read']>) => {
            const events = await target.read(...args);
            loaded++;
            await bothLoaded;
            return events;
          };
        },
      });
      const dispatch = (nodeId: string) =>
        new TaskHandler(gated).handle(taskId, { kind: 'dispatch', attempt: 1, nodeId, function: fnSpec(), nowMs: Date.now() }, 0);
      const results = await Promise.allSettled([dispatch('node-a'), dispatch('node-b')]);
      expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
      const refused = results.find((r) => r.status === 'rejected');
      expect(refused?.status === 'rejected' && refused.reason).toBeInstanceOf(ConcurrencyError);
      // The loser's next pass reloads: the attempt is dispatched already, so it decides nothing.
      const again = await new TaskHandler(store).handle(taskId, { kind: 'dispatch', attempt: 1, nodeId: 'node-b', function: fnSpec(), nowMs: Date.now() }, 0);
      expect(again.events).toEqual([]);
      expect((await store.read(streamName('task', taskId))).filter((e) => e.type === TaskDispatched.type)).toHaveLength(1);
    } finally {
      await nc.close();
    }
  }, 60_000);
});

/** Partition p of `service` is at home on replica p mod REPLICAS (lease.ts isHomePartition). */
const homeOf = (service: ServiceName, partition: number) => `${service}-${partition % REPLICAS}`;

/** Waits until every partition lease of the partitioned services is held (not released) by the instance `expected` names; returns the holders. */
async function partitionsHeldBy(stack: E2EStack, expected: (service: ServiceName, partition: number) => string, label: string) {
  return eventually(
    async () => {
      const leases = await readLeases(stack.store.connection);
      const holders = PARTITIONED.flatMap((service) => Array.from({ length: PARTITIONS }, (_, p) => ({ service, p, lease: leases.get(`${service}.p${p}`) })));
      return holders.every(({ service, p, lease }) => lease && !lease.released && lease.instance === expected(service, p)) ? holders : undefined;
    },
    TAKEOVER_WAIT_MS,
    label,
  );
}

/** SIGKILLs the current leader of each replicated service at once; resolves with each takeover time (ms) once another instance holds every key (its partitions' too). */
async function killLeaders(stack: E2EStack): Promise<Partial<Record<string, number>>> {
  const before = await readLeases(stack.store.connection);
  const killedAtMs = Date.now();
  const instanceOf = (service: ServiceName, index: number) => `${service}-${index}`;
  await Promise.all(
    LEASED_SERVICES.map((service) => {
      const replicas = stack.replicaSets.get(service)!;
      const leader = replicas.find((_, i) => before.get(service)?.instance === instanceOf(service, i));
      if (!leader) throw new Error(`no live replica of ${service} holds its lease: ${JSON.stringify(before.get(service))}`);
      return leader.stop('SIGKILL');
    }),
  );
  const takeovers: Partial<Record<string, number>> = {};
  // The killed leaders' partitions too (key `<service>.p<i>`): each must move to a survivor.
  const killed = new Set(LEASED_SERVICES.map((service) => before.get(service)!.instance));
  const keys = [...LEASED_SERVICES, ...[...before].filter(([key, l]) => key.includes('.p') && killed.has(l.instance)).map(([key]) => key)];
  // Until another instance holds each key (read every 25 ms: a measurement, not an assertion on time).
  await Promise.all(
    keys.map(async (key) => {
      const old = before.get(key)!;
      await eventually(
        async () => {
          const now = (await readLeases(stack.store.connection)).get(key);
          return now && now.instance !== old.instance && !now.released ? now : undefined;
        },
        TAKEOVER_WAIT_MS,
        `a new holder of ${key}`,
      );
      takeovers[key] = Date.now() - killedAtMs;
    }),
  );
  return takeovers;
}

/** Starts again (same instance names) the replicas killed earlier: they come back as standbys. */
async function restartKilled(stack: E2EStack): Promise<void> {
  for (const service of LEASED_SERVICES) {
    const replicas = stack.replicaSets.get(service)!;
    for (const [i, p] of replicas.entries()) {
      if (p.child.exitCode === null && p.child.signalCode === null) continue;
      replicas[i] = ServiceProcess.start(service, stack.replicaEnv(service, i));
      if (i === 0) stack.services.set(service, replicas[i]);
      await stack.replicaHealthy(stack.store.connection, replicas[i]);
    }
  }
}

/**
 * Runs a scenario; with replicas, SIGKILLs each service's leader once two of its tasks have
 * succeeded. Fails at once if a surviving replica exits. Then the raw log must pass every check.
 */
async function runWithLeaderKills(stack: E2EStack, name: 'normal' | 'debt') {
  const startedAtMs = Date.now();
  const running = runScenario(name, stack.client, stack.store, stack.options);
  let finished = false;
  void running.finally(() => (finished = true));
  let takeovers: Partial<Record<string, number>> = {};
  if (REPLICAS > 1) {
    const succeededBefore = (await readLog(stack.store)).events.filter((e) => e.type === TaskSucceeded.type).length;
    // In the middle: once tasks of this run have succeeded (bounded wait; the scenario ending ends it too).
    for (let polls = 0; polls < 600 && !finished; polls++) {
      if ((await readLog(stack.store)).events.filter((e) => e.type === TaskSucceeded.type).length >= succeededBefore + 2) break;
      await sleep(500);
    }
    expect(finished).toBe(false); // the kills land while the scenario runs
    takeovers = await killLeaders(stack);
  }
  const survivors = [...stack.replicaSets.values()].flat().filter((p) => p.child.exitCode === null && p.child.signalCode === null);
  const exits = survivors.map((p) => p.exited.then((code) => Promise.reject(new Error(`${p.service} exited with ${code}:\n${p.logs.slice(-6000)}`))));
  const s = await Promise.race([running, ...exits]);
  const scenarioMs = Date.now() - startedAtMs;
  if (!s.ok) throw new Error(`${name} failed: ${s.error}\n${JSON.stringify(s)}\n${replicaLogs(stack)}`);
  console.log(`replicas ${REPLICAS}: ${name} scenario ${scenarioMs} ms; takeover after SIGKILL (ms): ${JSON.stringify(takeovers)}`);
  walletIds.add(s.walletId);

  // The raw log, once the stack settled (samples charged, idle containers stopped).
  const { failing, events } = await settledBooks(stack.store, walletIds, SETTLE_TIMEOUT_MS);
  expect(failing).toEqual([]);
  // No attempt dispatched twice (charges and postings: checkEvents' charges-paired and usage-cpu).
  const dispatches = events.flatMap((e) => (isEvent(e, TaskDispatched) ? [`${e.stream}@${e.data.attempt}`] : []));
  expect(dispatches.filter((d, i) => dispatches.indexOf(d) !== i)).toEqual([]);
  expect((await verifyAudit(stack.store)).pass).toBe(true);
  expect(await stack.client.requestRaw('mesh.query.ledger.audit', {}, 120_000)).toMatchObject({ pass: true });
  return s;
}

/** Every replica's recent output (E2EStack.logs() shows the first replica of each service only). */
function replicaLogs(stack: E2EStack): string {
  const all = [...stack.replicaSets.entries()].flatMap(([service, ps]) =>
    ps.map((p, i) => `----- ${service} replica ${i} (pid ${p.child.pid})\n${p.logs.slice(-3000)}`),
  );
  if (process.env.REPLICAS_LOG_DIR) {
    mkdirSync(process.env.REPLICAS_LOG_DIR, { recursive: true });
    for (const [service, ps] of stack.replicaSets)
      ps.forEach((p, i) => writeFileSync(join(process.env.REPLICAS_LOG_DIR!, `${service}-${i}-${p.child.pid}.log`), p.logs));
  }
  return all.join('\n');
}

/** The wallets of the scenarios run so far (the checks cover them all). */
const walletIds = new Set<string>();

describe(`${REPLICAS} replicas of each service: the normal and debt scenarios survive a SIGKILL of each service's leader`, () => {
  const stack = new E2EStack(SPEED, true, undefined, REPLICAS, PARTITIONS);

  beforeAll(async () => {
    execSync('docker info', { stdio: 'ignore' }); // a clear failure when no engine answers
    await stack.start();
    await prepare(stack.client, stack.options);
  }, 300_000);
  afterAll(async () => {
    await stack.stop();
  }, 120_000);

  it('one leader per replicated service, named in mesh-leases', async () => {
    const leases = await eventually(
      async () => {
        const found = await readLeases(stack.store.connection);
        return LEASED_SERVICES.every((s) => found.get(s)) ? found : undefined;
      },
      30_000,
      'a lease per service',
    );
    for (const service of LEASED_SERVICES) {
      const instances = REPLICAS > 1 ? Array.from({ length: REPLICAS }, (_, i) => `${service}-${i}`) : [service];
      expect(instances).toContain(leases.get(service)!.instance);
    }
  });

  const partitionedIt = PARTITIONS > 1 && REPLICAS > 1 ? it : it.skip;
  partitionedIt(
    `${PARTITIONS} partitions: each held by its home replica (partition p on replica p mod ${REPLICAS}), so the replicas share the work`,
    async () => {
      await partitionsHeldBy(stack, homeOf, 'every partition at home');
    },
  );

  it('normal: completes with each leader SIGKILLed mid-run; the standbys take over; nothing is dispatched, charged or posted twice; the books balance', async () => {
    const s = await runWithLeaderKills(stack, 'normal');
    expect(s.tasksSucceeded).toBe(9);
    if (PARTITIONS > 1 && REPLICAS > 1) {
      // Every partition that holds samples was worked through by its own consumer: acknowledged up
      // to its last sample (whichever replica held it when). The stored subjects say which hold some.
      const jsm = await stack.store.connection.jetstreamManager();
      const stored = (await jsm.streams.info(EVENTS_STREAM, { subjects_filter: 'mesh.events.usage.*.*' })).state.subjects ?? {};
      const used = [...new Set(Object.keys(stored).map((subject) => Number(subject.split('.')[4])))].sort();
      console.log(`samples stored in partitions ${JSON.stringify(used)} (${Object.keys(stored).length} containers)`);
      expect(used.length).toBeGreaterThan(0);
      for (const p of used) {
        for (const durable of [`credit-manager_usage_p${p}`, `scaler_usage_p${p}`]) {
          const info = await jsm.consumers.info(EVENTS_STREAM, durable);
          expect({ durable, pending: info.num_pending, acked: info.ack_floor.stream_seq > 0 }).toEqual({ durable, pending: 0, acked: true });
        }
      }
    }
  }, 900_000);

  partitionedIt(
    'the killed replicas come back and take their home partitions back',
    async () => {
      await restartKilled(stack);
      const startedAtMs = Date.now();
      await partitionsHeldBy(stack, homeOf, 'every partition at home again');
      console.log(`partitions back at home ${Date.now() - startedAtMs} ms after the restarted replicas answered health`);
    },
    300_000,
  );

  it('debt: the killed replicas come back as standbys; the new leaders SIGKILLed mid-run; throttled and repaid as with one replica; the books balance', async () => {
    if (REPLICAS > 1) await restartKilled(stack); // (a no-op after the partitions case restarted them)
    const s = await runWithLeaderKills(stack, 'debt');
    expect(s.tasksSucceeded).toBe(9);
    expect(s.aborts).toBe(0);
  }, 900_000);

  it('the replicas did all of the above within their NATS permissions (leases, consumer rewinds: no violation logged)', () => {
    expect(stack.server.logs.split('\n').filter((l) => /Violation/.test(l))).toEqual([]);
  });
});
