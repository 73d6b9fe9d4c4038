import { cpus } from 'node:os';
import type { Command } from 'commander';
import { MeshClient } from '@mesh/runtime';
import { withStore } from '../connection';
import { SCENARIOS, prepare, runScenario, type ScenarioName, type ScenarioSummary } from '../demo/scenarios';
import { UsageError, emit, progress, table } from '../output';
import { provision, startServices, status, waitHealthy } from '../stack';
import { writeReport } from './report';

export const DEFAULT_SPEED = 20;

/** Whole cores the local node offers (NODE_CPU_MILLIS when set, as the container-manager does). */
export function nodeCores(): number {
  const millis = Number(process.env.NODE_CPU_MILLIS ?? cpus().length * 1000);
  return Math.max(1, Math.floor(millis / 1000));
}

/** Settings the stack runs with for a demo at `speed`: every duration divided by it. */
export function demoEnv(speed: number): Record<string, string> {
  return {
    IDLE_TIMEOUT_MS: String(Math.max(1000, Math.round(60_000 / speed))),
    SAMPLE_INTERVAL_MS: String(Math.max(250, Math.round(1000 / speed))),
  };
}

export function registerDemo(program: Command) {
  program
    .command('demo')
    .description("run the reference system's stress experiments on the local stack, then print a summary and write the report")
    .option('--scenario <name>', `normal | debt | abort | all`, 'all')
    .option(
      '--speed <factor>',
      'divide every duration by this whole number (prices are multiplied by it, so the money story is the same)',
      String(DEFAULT_SPEED),
    )
    .option('--image <image>', 'image of the stress function', 'mesh/task-base:latest')
    .option('--out <dir>', 'folder for the report', 'reports')
    .addHelpText(
      'after',
      `
Scenarios (the reference system's, at --speed 1; '<cores>-<seconds>' per task):
  normal  4 GRC: 1-150 2-100 3-250 2-200 1-400; idle stop; +2 GRC: 3-100 1-200 2-100 1-300. All succeed, never in debt.
  debt    the same with 1 GRC: overdrawn during the third task (throttled), the rest wait for the +2 GRC deposit;
          when the second batch drains the wallet again, 1 GRC top-ups let the waiting tasks finish.
  abort   one 3-1000 task with 1 GRC: throttled, then suspended at max debt 0.5: aborted, requeued, runs again after a deposit.
On a node with fewer than 3 cores, a task asking more runs longer so it does the reference's
core-seconds (its cost is the reference's). Starts the stack (mesh up) when it is not running.`,
    )
    .action(async (o: { scenario: string; speed: string; image: string; out: string }) => {
      if (!/^[1-9]\d{0,3}$/.test(o.speed)) throw new UsageError('--speed must be a whole number from 1 to 9999');
      const speed = Number(o.speed);
      const one = SCENARIOS.find((s) => s === o.scenario);
      const chosen: ScenarioName[] = o.scenario === 'all' ? SCENARIOS : one ? [one] : [];
      if (chosen.length === 0) throw new UsageError(`--scenario must be one of ${[...SCENARIOS, 'all'].join('|')}`);
      const env = demoEnv(speed);
      if (!(await status()).every((s) => s.healthy)) {
        progress('starting the local stack');
        provision('up');
        startServices(env);
        await waitHealthy();
      } else {
        progress(
          `stack already running: its own IDLE_TIMEOUT_MS/SAMPLE_INTERVAL_MS apply (for --speed ${speed} start it with ${Object.entries(env)
            .map(([k, v]) => `${k}=${v}`)
            .join(' ')})`,
        );
      }
      await withStore(async (store, nc) => {
        const client = new MeshClient(nc, 15_000);
        const options = { speed, nodeCores: nodeCores(), image: o.image, idleTimeoutMs: Number(env.IDLE_TIMEOUT_MS), log: progress };
        const demoStart = (await store.headPosition()) + 1n;
        await prepare(client, options);
        const summaries: ScenarioSummary[] = [];
        for (const name of chosen) summaries.push(await runScenario(name, client, store, options));
        const report = await writeReport(store, o.out, `mesh demo: ${chosen.join(', ')} (speed ${speed})`, demoStart);
        emit({ speed, summaries, report: report.file }, () => {
          console.log('');
          table(
            summaries.map((s) => ({
              scenario: s.scenario,
              result: s.ok ? 'ok' : 'FAILED',
              succeeded: s.tasksSucceeded,
              aborted: s.aborts,
              requeued: s.requeues,
              'min balance': s.minBalance,
              'final balance': s.finalBalance,
              'throttled at': s.throttledAtS === undefined ? '-' : `${s.throttledAtS}s`,
              'suspended at': s.suspendedAtS === undefined ? '-' : `${s.suspendedAtS}s`,
              took: `${s.durationS}s`,
            })),
          );
          for (const s of summaries.filter((x) => !x.ok)) console.log(`\n${s.scenario}: ${s.error}`);
          console.log(`\nreport: ${report.file}`);
        });
        if (summaries.some((s) => !s.ok)) process.exitCode = 1;
      });
    });
}
