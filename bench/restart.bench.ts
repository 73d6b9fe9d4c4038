/**
 * `npm run bench restart [-- --events 5000000] [--only ledger] [--compiled]`: start time of the
 * scheduler, the ledger and the credit-manager over a long log, from their snapshot versus a full
 * replay (the baseline).
 *
 * Fills a real nats-server's MESH_EVENTS with N synthetic but valid events (test/integration/restart/
 * synthetic-log.ts: task lifecycles, samples, charges, sealed wallet postings, standings), published
 * raw and concurrently as the store writes them. Then, per service: its durable consumers are created
 * at the log's head (the runtime's own configs), as a restarted service finds them, and it starts as
 * a real process: with `<SVC>_SNAPSHOT_LOAD=off` (full replay; it writes a snapshot once caught up),
 * then from that snapshot. Each figure is process start to healthy; the service's own "... in N ms"
 * line (state loaded and caught up) and the seconds after spawn of its milestones are logged beside it.
 * The services run from the sources through ts-node (transpile only), or with `--compiled` from a
 * fresh build of `tsconfig.build.json` (what `npm run build` compiles, as the image and a built
 * `mesh up` run them; the same snapshot is then also started through ts-node, for comparison).
 * Goal: under 5 s from the snapshot, whatever N (the same at 1M and 5M).
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { DeliverPolicy, type NatsConnection } from 'nats';
import { CreditManagerService } from '../apps/credit-manager/src/main';
import { LedgerService } from '../apps/ledger/src/main';
import { SchedulerService } from '../apps/scheduler/src/main';
import { commonEnv, loadConfig, type EnvSpec } from '@mesh/config';
import { EVENTS_STREAM, openWalletRequest, type ServiceName } from '@mesh/contracts';
import { JetStreamEventStore } from '@mesh/eventstore';
import type { EventStore } from '@mesh/eventstore/port';
import { SNAPSHOT_BUCKET } from '@mesh/eventstore/snapshot-store';
import { MeshClient, durableConsumersOf, type DurableConsumer, type ServiceDefinition } from '@mesh/runtime';
import { NatsServerProcess, ServiceProcess } from '@mesh/testing';
import { SyntheticLog, publishRaw } from '../test/integration/restart/synthetic-log';
import type { BenchResult } from './run';

const DEFAULT_EVENTS = 1_000_000;
const GOAL_S = 5;
/** Events generated and published per round (bounds the generator's memory). */
const FILL_ROUND = 50_000;

function eventsWanted(): number {
  const at = process.argv.indexOf('--events');
  if (at < 0) return DEFAULT_EVENTS;
  const n = Number(process.argv[at + 1]);
  if (!Number.isSafeInteger(n) || n < 1000 || n > 100_000_000) throw new Error(`--events ${process.argv[at + 1]}: must be an integer from 1000 to 100000000`);
  return n;
}

/** `--only <service>`: measure that service alone (the fill is the same; it saves the others' starts). */
function servicesWanted(): ServiceName[] | undefined {
  const at = process.argv.indexOf('--only');
  return at < 0 ? undefined : (process.argv[at + 1] ?? '').split(',').map((s) => s as ServiceName);
}

/** `--compiled`: run the services compiled (a fresh `tsc -p tsconfig.build.json` build, as production and the image run them) rather than through ts-node. */
function compiledWanted(): boolean {
  return process.argv.includes('--compiled');
}

const ROOT = join(__dirname, '..');

/** What `npm run build` compiles, into a temporary folder inside the repository (so the compiled files find node_modules as dist/ does). */
function buildInto(log: (line: string) => void): string {
  mkdirSync(join(ROOT, '.data'), { recursive: true });
  const dist = mkdtempSync(join(ROOT, '.data', 'restart-bench-dist-'));
  const started = performance.now();
  execFileSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(ROOT, 'tsconfig.build.json'), '--outDir', dist], {
    cwd: ROOT,
    stdio: 'inherit',
  });
  log(`compiled into ${dist} in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  return dist;
}

/**
 * Creates the durable consumers `definition` creates at start (the runtime's own configs,
 * durableConsumersOf) at the log's head, as a restarted service finds them: acked up to the head.
 * Without this, a consumer new in the bench's server starts at the log's beginning (deliver all)
 * and its backlog (e.g. the ledger re-posting every synthetic charge) runs during each measured
 * start. The start position is the only difference (a consumer cannot be created acked up to a
 * sequence); the service's own start then finds the consumer and updates its mutable fields.
 */
async function consumersAtHead(nc: NatsConnection, store: EventStore, consumers: DurableConsumer[]): Promise<string[]> {
  const head = await store.headPosition();
  const jsm = await nc.jetstreamManager();
  for (const { config } of consumers) {
    await jsm.consumers.add(EVENTS_STREAM, { ...config, deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: Number(head) + 1 });
  }
  return consumers.map((c) => c.config.durable_name);
}

/** The durable consumers of `definition` with the config its process would load from `env`. */
function consumersOf<S extends EnvSpec>(definition: ServiceDefinition<S>) {
  return (nc: NatsConnection, store: EventStore, env: Record<string, string>): DurableConsumer[] =>
    durableConsumersOf(definition, { service: definition.service, nc, store, config: loadConfig({ ...commonEnv, ...definition.env }, env) });
}

/** Where a start's time goes, from the process's own output: seconds after spawn at which each line first appeared. */
const MILESTONES: [string, RegExp][] = [
  ['code loaded (Nest starts)', /Starting Nest application/],
  ['state loaded', /(?:projection|view rebuilt|plans and task index)[^\n]* in \d+ ms/],
  ['ready', / ready \(pid/],
];

function milestones(proc: ServiceProcess, startedMs: number): Record<string, number> {
  const seen: Record<string, number> = {};
  let tail = '';
  const onData = (chunk: Buffer) => {
    tail = (tail + chunk.toString()).slice(-4096);
    for (const [what, pattern] of MILESTONES) if (seen[what] === undefined && pattern.test(tail)) seen[what] = (performance.now() - startedMs) / 1000;
  };
  proc.child.stdout?.on('data', onData);
  proc.child.stderr?.on('data', onData);
  return seen;
}

interface ServiceCase {
  service: ServiceName;
  /** Its durable consumers (durableConsumersOf) as its process would create them. */
  consumers: ReturnType<typeof consumersOf>;
  prefix: 'SCHEDULER' | 'LEDGER' | 'CREDIT';
  key: string;
  env: Record<string, string>;
  /** Makes the service fold one more event, so that a snapshot whose write failed is tried again (it is retried at the next trigger). */
  retrigger?: (attempt: number) => Promise<unknown>;
}

/** Snapshot writes tried again after a failure before the bench gives up (a KV put can time out on a loaded machine). */
const SNAPSHOT_RETRIES_MAX = 3;

export async function run(log: (line: string) => void): Promise<BenchResult[]> {
  const events = eventsWanted();
  const server = await NatsServerProcess.start();
  const secrets = mkdtempSync(join(tmpdir(), 'mesh-restart-bench-'));
  const nc = await server.connect('restart-bench');
  const results: BenchResult[] = [];
  const dists: string[] = [];
  const store = await JetStreamEventStore.connect(nc);
  try {
    const synthetic = new SyntheticLog({ seed: 42, users: 200, functions: 20, nodes: 10, creditBatch: 50 });
    const fillStart = performance.now();
    let written = 0;
    while (written < events) {
      written += await publishRaw(nc.jetstream(), synthetic.events(Math.min(FILL_ROUND, events - written)), 1024);
      if (written % 500_000 < FILL_ROUND) log(`filled ${written} events (${Math.round(written / ((performance.now() - fillStart) / 1000))} events/s)`);
    }
    written += await publishRaw(nc.jetstream(), synthetic.flush());
    log(`log filled: ${written} events, head ${await store.headPosition()}, in ${((performance.now() - fillStart) / 1000).toFixed(1)} s`);
    const distDir = compiledWanted() ? buildInto(log) : undefined;
    if (distDir) dists.push(distDir);

    const allCases: ServiceCase[] = [
      { service: 'scheduler', consumers: consumersOf(SchedulerService), prefix: 'SCHEDULER', key: 'scheduler.scheduler.view', env: {} },
      {
        service: 'ledger',
        consumers: consumersOf(LedgerService),
        prefix: 'LEDGER',
        key: 'ledger.ledger.projection',
        env: { LEDGER_HTTP_PORT: '0', LEDGER_MAC_KEY_FILE: join(secrets, 'ledger-mac.key') },
        retrigger: (attempt) => new MeshClient(nc, 30_000).request(openWalletRequest, { walletId: `bench-snapshot-retry-${attempt}` }),
      },
      { service: 'credit-manager', consumers: consumersOf(CreditManagerService), prefix: 'CREDIT', key: 'credit-manager.credit-manager.plans', env: {} },
    ];
    const only = servicesWanted();
    const cases = only ? allCases.filter((c) => only.includes(c.service)) : allCases;
    if (cases.length === 0) throw new Error(`--only ${only?.join(',')}: names none of ${allCases.map((c) => c.service).join(', ')}`);
    const kv = await nc.jetstream().views.kv(SNAPSHOT_BUCKET, { history: 1 });
    log(`services run ${distDir ? 'compiled (node, dist)' : 'from the sources (ts-node, transpile only)'}`);
    for (const c of cases) {
      const env = (load: 'on' | 'off') => ({
        NATS_URL: server.url,
        LOG_LEVEL: 'log',
        [`${c.prefix}_SNAPSHOT_LOAD`]: load,
        // Snapshot as soon as the start-up replay is done (the bench's next start uses it).
        [`${c.prefix}_SNAPSHOT_EVERY_EVENTS`]: '1',
        ...c.env,
      });
      log(`${c.service}: durable consumers created at the head: ${(await consumersAtHead(nc, store, c.consumers(nc, store, env('off')))).join(', ')}`);
      /** `fromSources`: through ts-node even when the bench runs them compiled (the same snapshot, for comparison). */
      const start = async (load: 'on' | 'off', fromSources = false) => {
        const what = `${c.service} (snapshot ${load}${distDir ? (fromSources ? ', ts-node' : ', compiled') : ''})`;
        const started = performance.now();
        const proc = ServiceProcess.start(c.service, env(load), { distDir: fromSources ? undefined : distDir });
        const seen = milestones(proc, started);
        try {
          // A process that exits is not waited on for the hour (healthy() keeps asking until its timeout).
          await Promise.race([
            proc.healthy(server.url, 3_600_000),
            proc.exited.then((code) => {
              throw new Error(`${c.service} exited (${code ?? proc.child.signalCode}) before it was healthy: ${proc.logs.slice(-3000)}`);
            }),
          ]);
          const seconds = (performance.now() - started) / 1000;
          const own = /(?:projection|view rebuilt|plans and task index)[^\n]* in (\d+) ms[^\n]*/.exec(proc.logs)?.[0];
          const detail = /start-up: [^\n]*/.exec(proc.logs)?.[0];
          log(`${what}: healthy in ${seconds.toFixed(2)} s; ${own ?? '(no start-up line)'}${detail ? `; ${detail}` : ''}`);
          log(
            `${what}: seconds after spawn: ${Object.entries(seen)
              .map(([milestone, s]) => `${milestone} ${s.toFixed(2)}`)
              .join(', ')}`,
          );
          // The process keeps its last 20 KB of output: when the start-up line is gone, show what pushed it out.
          if (!own) log(`${what}: last output: ${proc.logs.slice(-3000)}`);
          if (load === 'off') await waitForSnapshot(c, proc);
          return seconds;
        } finally {
          await proc.stop('SIGTERM', 60_000);
        }
      };
      await kv.purge(c.key).catch(() => undefined);
      const full = await start('off');
      const fromSnapshot = await start('on');
      if (distDir) {
        const fromSources = await start('on', true);
        results.push({
          name: `${c.service} start from snapshot through ts-node, ${written} events`,
          value: fromSources,
          unit: 's',
          baseline: { name: 'compiled', value: fromSnapshot },
          goal: `< ${GOAL_S} s`,
          met: fromSources < GOAL_S,
        });
      }
      results.push({
        name: `${c.service} start from snapshot${distDir ? ' compiled' : ''}, ${written} events`,
        value: fromSnapshot,
        unit: 's',
        baseline: { name: 'full replay', value: full },
        goal: `< ${GOAL_S} s`,
        met: fromSnapshot < GOAL_S,
      });
    }
    return results;

    async function waitForSnapshot(c: ServiceCase, proc: ServiceProcess): Promise<void> {
      let retries = 0;
      for (let i = 0; i < 6000; i++) {
        const entry = await kv.get(c.key);
        if (entry?.operation === 'PUT' && entry.value.length > 0) {
          log(`snapshot ${c.key}: ${Buffer.from(entry.value).toString()}`);
          return;
        }
        const failures = proc.logs.match(/snapshot \S+ not written[^\n]*/g) ?? [];
        if (failures.length > retries) {
          if (!c.retrigger || retries >= SNAPSHOT_RETRIES_MAX) throw new Error(failures[failures.length - 1]);
          retries = failures.length;
          log(`${failures[failures.length - 1]}: made ${c.service} fold one more event to try again (${retries}/${SNAPSHOT_RETRIES_MAX})`);
          await c.retrigger(retries);
        }
        await sleep(100);
      }
      throw new Error(`no snapshot ${c.key} written within 10 minutes: ${proc.logs.slice(-2000)}`);
    }
  } finally {
    await store.close();
    await nc.close();
    for (const dist of dists) rmSync(dist, { recursive: true, force: true });
    await server.dispose();
    rmSync(secrets, { recursive: true, force: true });
  }
}
