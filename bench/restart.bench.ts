/**
 * `npm run bench restart [-- --events 5000000] [--only ledger]`: start time of the scheduler, the ledger and the
 * credit-manager over a long log, from their snapshot versus a full replay (the baseline).
 *
 * Fills a real nats-server's MESH_EVENTS with N synthetic but valid events (test/integration/restart/
 * synthetic-log.ts: task lifecycles, samples, charges, sealed wallet postings, standings), published
 * raw and concurrently as the store writes them. Then, per service, as a real process: a start with
 * `<SVC>_SNAPSHOT_LOAD=off` (full replay; it writes a snapshot once caught up), then a start from that
 * snapshot. Each figure is process start to healthy (includes ts-node's start, the same for both);
 * the service's own "... in N ms" line (state loaded and caught up) is logged beside it.
 * Goal: under 5 s from the snapshot, whatever N (the same at 1M and 5M).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { openWalletRequest, type ServiceName } from '@mesh/contracts';
import { JetStreamEventStore } from '@mesh/eventstore';
import { SNAPSHOT_BUCKET } from '@mesh/eventstore/snapshot-store';
import { MeshClient } from '@mesh/runtime';
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

interface ServiceCase {
  service: ServiceName;
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
  try {
    const store = await JetStreamEventStore.connect(nc);
    const synthetic = new SyntheticLog({ seed: 42, users: 200, functions: 20, nodes: 10, creditBatch: 50 });
    const fillStart = performance.now();
    let written = 0;
    while (written < events) {
      written += await publishRaw(nc.jetstream(), synthetic.events(Math.min(FILL_ROUND, events - written)), 1024);
      if (written % 500_000 < FILL_ROUND) log(`filled ${written} events (${Math.round(written / ((performance.now() - fillStart) / 1000))} events/s)`);
    }
    written += await publishRaw(nc.jetstream(), synthetic.flush());
    log(`log filled: ${written} events, head ${await store.headPosition()}, in ${((performance.now() - fillStart) / 1000).toFixed(1)} s`);
    await store.close();

    const allCases: ServiceCase[] = [
      { service: 'scheduler', prefix: 'SCHEDULER', key: 'scheduler.scheduler.view', env: {} },
      {
        service: 'ledger',
        prefix: 'LEDGER',
        key: 'ledger.ledger.projection',
        env: { LEDGER_HTTP_PORT: '0', LEDGER_MAC_KEY_FILE: join(secrets, 'ledger-mac.key') },
        retrigger: (attempt) => new MeshClient(nc, 30_000).request(openWalletRequest, { walletId: `bench-snapshot-retry-${attempt}` }),
      },
      { service: 'credit-manager', prefix: 'CREDIT', key: 'credit-manager.credit-manager.plans', env: {} },
    ];
    const only = servicesWanted();
    const cases = only ? allCases.filter((c) => only.includes(c.service)) : allCases;
    if (cases.length === 0) throw new Error(`--only ${only?.join(',')}: names none of ${allCases.map((c) => c.service).join(', ')}`);
    const kv = await nc.jetstream().views.kv(SNAPSHOT_BUCKET, { history: 1 });
    for (const c of cases) {
      const start = async (load: 'on' | 'off') => {
        const started = performance.now();
        const proc = ServiceProcess.start(c.service, {
          NATS_URL: server.url,
          LOG_LEVEL: 'log',
          [`${c.prefix}_SNAPSHOT_LOAD`]: load,
          // Snapshot as soon as the start-up replay is done (the bench's next start uses it).
          [`${c.prefix}_SNAPSHOT_EVERY_EVENTS`]: '1',
          ...c.env,
        });
        try {
          await proc.healthy(server.url, 3_600_000);
          const seconds = (performance.now() - started) / 1000;
          const own = /(?:projection|view rebuilt|plans and task index)[^\n]* in (\d+) ms[^\n]*/.exec(proc.logs)?.[0];
          const detail = /start-up: [^\n]*/.exec(proc.logs)?.[0];
          log(`${c.service} (snapshot ${load}): healthy in ${seconds.toFixed(2)} s; ${own ?? '(no start-up line)'}${detail ? `; ${detail}` : ''}`);
          // The process keeps its last 20 KB of output: when the start-up line is gone, show what pushed it out.
          if (!own) log(`${c.service} (snapshot ${load}): last output: ${proc.logs.slice(-3000)}`);
          if (load === 'off') await waitForSnapshot(c, proc);
          return seconds;
        } finally {
          await proc.stop('SIGTERM', 60_000);
        }
      };
      await kv.purge(c.key).catch(() => undefined);
      const full = await start('off');
      const fromSnapshot = await start('on');
      results.push({
        name: `${c.service} start from snapshot, ${written} events`,
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
    await nc.close();
    await server.dispose();
    rmSync(secrets, { recursive: true, force: true });
  }
}
