import { Logger } from '@nestjs/common';
import type { NatsConnection } from 'nats';
import { OPERATOR, isEventOf } from '@mesh/contracts';
import { commonEnv, loadConfig } from '@mesh/config';
import { JetStreamEventStore } from '@mesh/eventstore';
import { readAllPaged, type EventStore } from '@mesh/eventstore/port';
import { KvSnapshotStore, SNAPSHOT_BUCKET, encodeSnapshot } from '@mesh/eventstore/snapshot-store';
import { NatsServerProcess } from '@mesh/testing';
import { CreditManagerEnv } from '../../../apps/credit-manager/src/config';
import { CreditManagerEngine } from '../../../apps/credit-manager/src/credit-manager.engine';
import { LedgerProjection } from '../../../apps/ledger/src/projection/ledger-projection';
import { LEDGER_SNAPSHOT_SCHEMA, encodeLedgerSnapshot, loadLedgerState, type LedgerStart } from '../../../apps/ledger/src/projection/ledger-snapshot';
import { LedgerQueries } from '../../../apps/ledger/src/projection/queries';
import { SCHEDULER_VIEW_SNAPSHOT_SCHEMA, SchedulerView, VIEW_EVENTS, dispatchInMemory } from '../../../apps/scheduler/src/domain/scheduler-view';
import { VIEW_CATEGORIES, restoreSchedulerView } from '../../../apps/scheduler/src/scheduler.engine';
import { SyntheticLog, publishRaw } from './synthetic-log';

jest.setTimeout(180_000);

/** Events before the snapshot and after it: a few thousand, so the suite stays short (no timing is asserted). */
const BEFORE = 2500;
const AFTER = 1500;
const quiet = { log: () => undefined, warn: () => undefined };

/**
 * Restart from a snapshot equals a full replay: a real nats-server, a synthetic log (task
 * lifecycles, samples, charges, debits with a few left uncredited on purpose, credits), a snapshot
 * of each service's state taken midway and written to the real KV bucket, more events appended,
 * then the state restored from the snapshot plus the tail compared with the state of a full replay.
 */
describe('restart from a snapshot', () => {
  let server: NatsServerProcess;
  let nc: NatsConnection;
  let store: JetStreamEventStore;
  let snapshots: KvSnapshotStore;
  let log: SyntheticLog;
  let midway: bigint;

  beforeAll(async () => {
    server = await NatsServerProcess.start();
    nc = await server.connect();
    store = await JetStreamEventStore.connect(nc);
    snapshots = new KvSnapshotStore(nc);
    log = new SyntheticLog({ seed: 7, users: 12, functions: 4, nodes: 3, uncreditedEvery: 37, creditBatch: 5 });
    await publishRaw(nc.jetstream(), log.events(BEFORE));
    midway = await store.headPosition();
  });

  afterAll(async () => {
    await store?.close();
    await nc?.close();
    await server?.dispose();
  });

  describe('the KV snapshot store', () => {
    it('stores a snapshot larger than a NATS message in chunks, replaces it whole, and refuses another schema or a damaged chunk', async () => {
      // Given records totalling several MiB of JSON (hard to compress: random hex)
      const records = Array.from({ length: 3000 }, (_, i) => ({ k: 'x', i, blob: randomHex(2000) }));
      const first = await snapshots.save('test.kv.big', encodeSnapshot(3, 42n, records));
      expect(first.chunks).toBeGreaterThan(4);
      // When it is replaced by a newer one
      const second = await snapshots.save('test.kv.big', encodeSnapshot(3, 43n, records.slice(0, 10)));
      // Then the newer one is read back, and the old generation's chunks are gone
      const loaded = await snapshots.load('test.kv.big', 3);
      expect(loaded.ok && loaded.snapshot.position).toBe(43n);
      expect(loaded.ok && loaded.snapshot.records).toEqual(records.slice(0, 10));
      const kv = await nc.jetstream().views.kv(SNAPSHOT_BUCKET);
      expect(await kv.get(`test.kv.big.${first.generation}.0`).then((e) => e?.operation)).not.toBe('PUT');
      // And a reader of another schema version, or of a damaged chunk, is told why instead
      expect(await snapshots.load('test.kv.big', 4)).toEqual({ ok: false, reason: 'schema version 3, this build reads 4' });
      await kv.put(`test.kv.big.${second.generation}.0`, Buffer.from('not gzip'));
      const damaged = await snapshots.load('test.kv.big', 3);
      expect(damaged.ok).toBe(false);
      expect(!damaged.ok && damaged.reason).toMatch(/sha256/);
      expect(await snapshots.load('test.kv.none', 3)).toEqual({ ok: false, reason: 'no snapshot' });
    });
  });

  describe('ledger', () => {
    it('projection and debits without credit from snapshot + tail equal a full replay, old uncredited debits included', async () => {
      // Given a snapshot of the ledger state midway
      const atMidway = await loadLedgerState(store, undefined, 'ledger.test.projection', quiet);
      expect(atMidway.projection.position).toBe(midway);
      // (the debits left uncredited on purpose so far; the others wait for their group-committed credit)
      const uncreditedBefore = atMidway.uncredited
        .list()
        .map((d) => d.chargeId)
        .filter((id) => log.uncredited.includes(id));
      expect(uncreditedBefore.length).toBeGreaterThan(3);
      await snapshots.save('ledger.test.projection', encodeLedgerSnapshot(atMidway.projection, atMidway.uncredited));
      // When more events are appended and the ledger restarts from the snapshot
      await publishRaw(nc.jetstream(), [...log.events(AFTER), ...log.flush()]);
      const restored = await loadLedgerState(store, snapshots, 'ledger.test.projection', quiet);
      const full = await loadLedgerState(store, undefined, 'ledger.test.projection', quiet);
      // Then it used the snapshot and read only the tail
      expect(restored.from).toBe('snapshot');
      expect(restored.snapshotPosition).toBe(midway);
      expect(restored.replayed).toBeLessThan(full.replayed);
      // And its state is the full replay's
      expect(ledgerState(restored)).toEqual(ledgerState(full));
      // And so are its costs per task and container (not in the snapshot: read back from the wallet streams on demand)
      expect(restored.projection.tasks.size).toBe(0);
      const restoredQueries = new LedgerQueries(restored.projection, store);
      const fullQueries = new LedgerQueries(full.projection, store);
      const charged = log.chargedSoFar();
      expect(charged.length).toBeGreaterThan(10);
      for (const { taskId, containerId } of charged.slice(0, 5).concat(charged.slice(-5))) {
        if (taskId) expect(await restoredQueries.taskCost(taskId)).toEqual(await fullQueries.taskCost(taskId));
        expect(await restoredQueries.containerCost(containerId)).toEqual(await fullQueries.containerCost(containerId));
      }
      expect((await restoredQueries.containerCost(charged[0].containerId)).charges).toBeGreaterThan(0);
      // And so is every wallet's statement, the newest lines (held) and all of them (older ones read back)
      for (const walletId of [...full.projection.wallets.keys()].slice(0, 20)) {
        expect(await restoredQueries.statement(walletId)).toEqual(await fullQueries.statement(walletId));
        expect(await restoredQueries.statement(walletId, 1000, -1)).toEqual(await fullQueries.statement(walletId, 1000, -1));
      }
      // And the debits left uncredited before the snapshot are still found
      const uncreditedAfter = restored.uncredited.list().map((d) => d.chargeId);
      expect(uncreditedAfter).toEqual(expect.arrayContaining(uncreditedBefore));
      // (all of those left uncredited on purpose; a debit cut off from its credit at the very end of the log may be there too)
      expect(uncreditedAfter).toEqual(expect.arrayContaining(log.uncredited));
    });

    it('falls back to a full replay when the snapshot has another schema version or is damaged', async () => {
      // Given a snapshot written by another schema version
      const warnings: string[] = [];
      const logger = { log: () => undefined, warn: (line: string) => warnings.push(line) };
      const projection = new LedgerProjection();
      for await (const e of readAllPaged(store, 1n, 1000)) projection.apply(e);
      await snapshots.save('ledger.test.old', encodeSnapshot(999, projection.position, [{ k: 'head' }]));
      // When the ledger starts
      const started = await loadLedgerState(store, snapshots, 'ledger.test.old', logger);
      // Then it replays the whole log, saying why
      expect(started.from).toBe('log');
      expect(started.projection.position).toBe(projection.position);
      expect(warnings).toEqual([`snapshot ledger.test.old not used (schema version 999, this build reads ${LEDGER_SNAPSHOT_SCHEMA}): replaying the whole log`]);
    });
  });

  describe('scheduler', () => {
    it('the view from snapshot + tail equals a full replay, down to the dispatch proposals', async () => {
      const startedAtMs = Date.now();
      // Given a snapshot of the view midway
      const beforeHead = await store.headPosition();
      const atMidway = new SchedulerView(startedAtMs - 60_000);
      const position = await foldView(atMidway, store, 0n);
      expect(position).toBe(beforeHead);
      await snapshots.save('scheduler.test.view', encodeSnapshot(SCHEDULER_VIEW_SNAPSHOT_SCHEMA, position, atMidway.snapshotRecords()));
      // When more events are appended and the scheduler restarts from the snapshot
      await publishRaw(nc.jetstream(), log.events(AFTER));
      const restored = await restoreSchedulerView(snapshots, 'scheduler.test.view', startedAtMs, quiet);
      expect(restored.from).toBe('snapshot');
      await foldView(restored.view, store, restored.position);
      const full = new SchedulerView(startedAtMs);
      await foldView(full, store, 0n);
      // Then both views hold the same state
      expect(viewState(restored.view)).toEqual(viewState(full));
      expect(restored.view.tasks.size).toBeGreaterThan(100);
      // And, once the nodes beat, both propose the same dispatches in the same order
      const nowMs = startedAtMs + 1000;
      for (const view of [restored.view, full]) {
        for (const nodeId of view.nodes.keys())
          view.heartbeat(
            {
              nodeId,
              atMs: nowMs,
              cpuMillis: 4000,
              memoryBytes: 8 * 1024 ** 3,
              usedCpuMillis: 0,
              usedMemoryBytes: 0,
              runningContainers: 0,
              idleContainers: [],
            },
            nowMs,
          );
      }
      const proposals = (view: SchedulerView) => dispatchInMemory(view, 200, nowMs).map((c) => `${c.task.taskId}@${c.nodeId}`);
      const fromSnapshot = proposals(restored.view);
      expect(fromSnapshot.length).toBeGreaterThan(0);
      expect(fromSnapshot).toEqual(proposals(full));
    });
  });

  describe('credit-manager', () => {
    const config = (load: 'on' | 'off') =>
      loadConfig({ ...CreditManagerEnv, ...commonEnv }, { NATS_URL: server.url, CREDIT_PLAN_REFRESH_MS: '0', CREDIT_SNAPSHOT_LOAD: load, LOG_LEVEL: 'warn' });

    it('plans, functions, task index and standings from snapshot + tail equal a full replay', async () => {
      Logger.overrideLogger(['error']);
      // Given a credit-manager that snapshots its state midway
      const first = new CreditManagerEngine(store, config('off'), nc);
      await first.onModuleInit();
      await first.writeSnapshot();
      await first.onModuleDestroy();
      // When more events are appended (a function updated, a new plan naming a function) and it restarts from the snapshot
      await publishRaw(nc.jetstream(), log.events(AFTER));
      const fromSnapshot = new CreditManagerEngine(store, config('on'), nc);
      const fullReplay = new CreditManagerEngine(store, config('off'), nc);
      await fromSnapshot.onModuleInit();
      await fullReplay.onModuleInit();
      try {
        // Then both answer the same
        expect(await fromSnapshot.pricePlans(undefined, OPERATOR)).toEqual(await fullReplay.pricePlans(undefined, OPERATOR));
        const index = (engine: CreditManagerEngine) => new Map([...engine.meter.taskIndex()].map((t) => [t.taskId, [...t.containerIds].sort()]));
        expect(index(fromSnapshot)).toEqual(index(fullReplay));
        expect(index(fromSnapshot).size).toBeGreaterThan(100);
        for (const walletId of ['u0', 'u1', 'u5']) {
          expect(await fromSnapshot.walletStanding({ walletId }, OPERATOR)).toEqual(await fullReplay.walletStanding({ walletId }, OPERATOR));
        }
        const [taskId] = [...index(fullReplay).keys()];
        expect(await fromSnapshot.charges({ taskId }, OPERATOR)).toEqual(await fullReplay.charges({ taskId }, OPERATOR));
      } finally {
        await fromSnapshot.onModuleDestroy();
        await fullReplay.onModuleDestroy();
        Logger.overrideLogger(['log', 'error', 'warn', 'debug', 'verbose']);
      }
    });
  });
});

function randomHex(length: number): string {
  let s = '';
  while (s.length < length) s += Math.random().toString(16).slice(2);
  return s.slice(0, length);
}

/** Folds the view's categories of the log after `after`, as the engine's subscription does; returns the last position read. */
async function foldView(view: SchedulerView, store: EventStore, after: bigint): Promise<bigint> {
  let position = after;
  for await (const event of readAllPaged(store, after + 1n, 1000)) {
    position = event.position;
    if (VIEW_CATEGORIES.includes(event.stream.slice(0, event.stream.indexOf('-'))) && isEventOf(event, VIEW_EVENTS)) view.apply(event);
  }
  return position;
}

/** Everything the scheduler view holds, in comparable form (sets sorted, the pool per wallet in its order). */
function viewState(view: SchedulerView) {
  return {
    functions: [...view.functions],
    tasks: [...view.tasks.values()].map((t) => ({ ...t, listedAtMs: undefined })),
    wallets: [...view.wallets],
    nodes: [...view.nodes.values()].map((n) => ({ ...n, tasks: [...n.tasks].sort(), busyKeys: [...n.busyKeys].sort(), idleKeys: [...n.idleKeys].sort() })),
    pool: [...view.pool.wallets()].map(([walletId]) => [walletId, [...view.pool.entriesOf(walletId)].sort((a, b) => b.priority - a.priority || a.seq - b.seq)]),
    dispatched: view.dispatched,
    running: view.running,
    listed: view.listTasks({}, 1_000_000).tasks.map((t) => t.taskId),
  };
}

function ledgerState(start: LedgerStart) {
  const p = start.projection;
  return {
    position: p.position,
    walletEvents: p.walletEvents,
    totals: p.totals,
    // Statement lines: a snapshot holds only the newest of each wallet (compared as statements, below).
    wallets: [...p.wallets].map(([id, { lines: _lines, ...wallet }]) => [id, wallet]),
    owners: [...p.owners],
    uncredited: start.uncredited.list(),
  };
}
