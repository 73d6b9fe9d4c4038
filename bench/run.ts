/**
 * `npm run bench [name...]`: runs every bench/*.bench.ts (or the named ones) and prints each result
 * beside its raw baseline measured in the same run. Each bench module exports
 * `run(log): Promise<BenchResult[]>` and starts whatever it needs (nats-server, Docker) itself.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';

export interface BenchResult {
  name: string;
  value: number;
  unit: string;
  /** The raw baseline from the same run, when the goal is a ratio. */
  baseline?: { name: string; value: number };
  /** Human statement of the goal, e.g. ">= 80% of raw". */
  goal?: string;
  /** Whether the goal was met (undefined when there is no goal). */
  met?: boolean;
}

export type BenchModule = { run(log: (line: string) => void): Promise<BenchResult[]> };

function format(r: BenchResult): string {
  const v = `${r.value.toFixed(r.value < 10 ? 2 : 0)} ${r.unit}`;
  const base = r.baseline
    ? `  | raw ${r.baseline.name}: ${r.baseline.value.toFixed(r.baseline.value < 10 ? 2 : 0)} ${r.unit}  | ratio ${(r.value / r.baseline.value).toFixed(2)}`
    : '';
  const goal = r.goal ? `  | goal ${r.goal}: ${r.met ? 'met' : 'NOT met'}` : '';
  return `  ${r.name.padEnd(48)} ${v}${base}${goal}`;
}

async function main() {
  // Names of benchmarks; `--name value` pairs are options of the benchmarks themselves (e.g. restart's --events).
  const args = process.argv.slice(2);
  const wanted = args.filter((a, i) => !a.startsWith('--') && !args[i - 1]?.startsWith('--'));
  const files = readdirSync(__dirname)
    .filter((f) => f.endsWith('.bench.ts'))
    .sort();
  const chosen = wanted.length ? files.filter((f) => wanted.some((w) => f.startsWith(w))) : files;
  if (chosen.length === 0) {
    console.error(`no benchmark matches ${wanted.join(' ')}; available: ${files.map((f) => f.replace('.bench.ts', '')).join(', ')}`);
    process.exit(2);
  }
  for (const file of chosen) {
    console.log(`\n== ${file.replace('.bench.ts', '')}`);
    const mod = (await import(join(__dirname, file))) as BenchModule;
    const results = await mod.run((line) => console.log(`  .. ${line}`));
    for (const r of results) console.log(format(r));
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
