/**
 * The long chaos soak: `npx ts-node --transpile-only -r tsconfig-paths/register scripts/chaos.ts --minutes N`
 * (options: --seed S, --tasks-per-wallet K, --faults-max F, --settle-minutes M, --json FILE).
 * `scripts/chaos.ts --check FILE.jsonl` runs the checks again on the raw log a soak dumped (no stack).
 * Prints progress, then the summary; exit code 0 when every check passed, 1 otherwise (2: bad usage).
 * See docs/chaos.md.
 */
import { execSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { z } from 'zod';
import { messageOf } from '@mesh/common';
import { isEvent, TaskSubmitted, type RecordedEvent } from '@mesh/contracts';
import { checkEvents } from '../test/chaos/checks';
import { expectedExit } from '../test/chaos/workload';
import { formatSummary, runSoak } from '../test/chaos/soak';

const USAGE =
  'usage: scripts/chaos.ts --minutes N [--seed S] [--tasks-per-wallet K] [--faults-max F] [--settle-minutes M] [--json FILE]\n       scripts/chaos.ts --check FILE.jsonl';

/** Whole-number options, each with its bounds: a typo must not start an hour-long run. */
const LIMITS: Record<string, [min: number, max: number]> = {
  minutes: [1, 24 * 60],
  seed: [0, 2 ** 31 - 1],
  'tasks-per-wallet': [1, 1000],
  'faults-max': [1, 100_000],
  'settle-minutes': [1, 120],
};

function parseArgs(argv: string[]): { numbers: Map<string, number>; json?: string; check?: string } {
  const numbers = new Map<string, number>();
  let json: string | undefined;
  if (argv[0] === '--check') {
    if (argv.length !== 2) throw new Error(`--check takes one file and no other option\n${USAGE}`);
    return { numbers, check: argv[1] };
  }
  for (let i = 0; i < argv.length; i += 2) {
    const name = argv[i]?.replace(/^--/, '');
    const value = argv[i + 1];
    if (!argv[i]?.startsWith('--') || value === undefined) throw new Error(`${argv[i] ?? ''}: every option takes a value\n${USAGE}`);
    if (name === 'json') {
      json = value;
      continue;
    }
    const bounds = LIMITS[name];
    if (!bounds) throw new Error(`--${name}: unknown option\n${USAGE}`);
    if (!/^\d+$/.test(value) || Number(value) < bounds[0] || Number(value) > bounds[1])
      throw new Error(`--${name} must be a whole number from ${bounds[0]} to ${bounds[1]}, got "${value}"`);
    numbers.set(name, Number(value));
  }
  if (!numbers.has('minutes')) throw new Error(`--minutes is required\n${USAGE}`);
  return { numbers, json };
}

async function main(): Promise<number> {
  let args: ReturnType<typeof parseArgs>;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (err) {
    console.error(messageOf(err));
    return 2;
  }
  if (args.check) return recheck(args.check);
  const minutes = args.numbers.get('minutes') ?? 0;
  execSync('docker info', { stdio: 'ignore' }); // a clear failure when no engine answers
  const started = Date.now();
  const summary = await runSoak({
    faultWindowMs: minutes * 60_000,
    // One fault every ~15 s on average, at most.
    faultsMax: args.numbers.get('faults-max') ?? minutes * 4 + 4,
    gapMinMs: 6000,
    gapMaxMs: 20_000,
    // About 20 tasks per window minute across the five wallets, so the node stays busy throughout.
    tasksPerWallet: args.numbers.get('tasks-per-wallet') ?? Math.max(6, minutes * 4),
    settleMs: (args.numbers.get('settle-minutes') ?? Math.max(5, Math.ceil(minutes / 2))) * 60_000,
    seed: args.numbers.get('seed') ?? Date.now() % 1_000_000,
    log: (line) => console.log(`[chaos +${Math.round((Date.now() - started) / 1000)}s] ${line}`),
  });
  console.log(`\n${formatSummary(summary)}`);
  if (args.json) writeFileSync(args.json, `${JSON.stringify(summary, null, 2)}\n`);
  return summary.pass ? 0 : 1;
}

/** The checks of a finished soak, again, from the raw log it dumped (every wallet that submitted a task is checked). */
function recheck(file: string): number {
  const events = readFileSync(file, 'utf8')
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line, i): RecordedEvent => {
      const e: unknown = JSON.parse(line);
      const parsed = dumpedEvent.safeParse(e);
      if (!parsed.success) throw new Error(`${file} line ${i + 1}: not a dumped event: ${parsed.error.message}`);
      return { ...parsed.data, position: BigInt(parsed.data.position) };
    });
  const walletIds = new Set(events.flatMap((e) => (isEvent(e, TaskSubmitted) ? [e.data.walletId] : [])));
  const checks = checkEvents(events, [], walletIds, expectedExit);
  console.log(`${events.length} events, ${walletIds.size} wallets with tasks`);
  for (const c of checks) {
    console.log(`  ${c.pass ? 'ok  ' : 'FAIL'} ${c.name}: ${c.pass ? c.rule : `${c.violations} violations`}`);
    for (const x of c.examples) console.log(`         ${x}`);
  }
  return checks.every((c) => c.pass) ? 0 : 1;
}

/** A line of the dump: the recorded envelope with the position as a decimal string (JSON has no bigint). */
const dumpedEvent = z.object({
  id: z.string(),
  type: z.string(),
  stream: z.string(),
  occurredAt: z.string(),
  schemaVersion: z.number(),
  correlationId: z.string(),
  causationId: z.string(),
  data: z.unknown(),
  revision: z.number(),
  position: z.string().regex(/^\d+$/),
  traceparent: z.string().optional(),
});

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(`chaos soak failed to run: ${messageOf(err)}`);
    process.exit(1);
  },
);
