/**
 * The long chaos soak: `npx ts-node --transpile-only -r tsconfig-paths/register scripts/chaos.ts --minutes N`
 * (options: --seed S, --tasks-per-wallet K, --faults-max F, --settle-minutes M, --json FILE).
 * Prints progress, then the summary; exit code 0 when every check passed, 1 otherwise (2: bad usage).
 * See docs/chaos.md.
 */
import { execSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { messageOf } from '@mesh/common';
import { formatSummary, runSoak } from '../test/chaos/soak';

const USAGE = 'usage: scripts/chaos.ts --minutes N [--seed S] [--tasks-per-wallet K] [--faults-max F] [--settle-minutes M] [--json FILE]';

/** Whole-number options, each with its bounds: a typo must not start an hour-long run. */
const LIMITS: Record<string, [min: number, max: number]> = {
  minutes: [1, 24 * 60],
  seed: [0, 2 ** 31 - 1],
  'tasks-per-wallet': [1, 1000],
  'faults-max': [1, 100_000],
  'settle-minutes': [1, 120],
};

function parseArgs(argv: string[]): { numbers: Map<string, number>; json?: string } {
  const numbers = new Map<string, number>();
  let json: string | undefined;
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

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(`chaos soak failed to run: ${messageOf(err)}`);
    process.exit(1);
  },
);
