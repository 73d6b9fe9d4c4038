import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { messageOf } from '@mesh/common';
import { depositRequest, deployFunctionRequest, formatAmount, openWalletRequest, parseAmount, setPricePlanRequest, submitTaskRequest } from '@mesh/contracts';
import type { EventStore } from '@mesh/eventstore';
import type { MeshClient } from '@mesh/runtime';
import { call } from '../connection';
import { ROOT } from '../stack';
import { ScenarioWatch } from './watch';

export type ScenarioName = 'normal' | 'debt' | 'abort';
export const SCENARIOS: ScenarioName[] = ['normal', 'debt', 'abort'];

/** `<cores>-<seconds>` of the reference system's stress experiments (seconds at speed 1). */
type Stress = [cores: number, seconds: number];
const FIRST: Stress[] = [
  [1, 150],
  [2, 100],
  [3, 250],
  [2, 200],
  [1, 400],
];
const SECOND: Stress[] = [
  [3, 100],
  [1, 200],
  [2, 100],
  [1, 300],
];
const REFERENCE_CPU_PRICE = parseAmount('6'); // GRC per core-hour
export const STRESS_FUNCTION = 'stress';

export interface DemoOptions {
  speed: number; // whole number: durations / speed, prices x speed
  /** Cores the node can give one container; a task asking more runs longer (see workSeconds). */
  nodeCores: number;
  image: string;
  idleTimeoutMs: number;
  log: (line: string) => void;
}

export interface ScenarioSummary {
  scenario: ScenarioName;
  walletId: string;
  ok: boolean;
  error?: string;
  tasksSucceeded: number;
  tasksFailed: number;
  aborts: number;
  requeues: number;
  minBalance: string;
  finalBalance: string;
  throttledAtS?: number;
  suspendedAtS?: number;
  durationS: number;
}

/**
 * Seconds a stress task runs so that it does the reference's work, cores x seconds core-seconds:
 * on a node with fewer cores than the task asks for (a 3-core task on this 2-core machine), its
 * loops share the cores and it runs proportionally longer. Every task then costs exactly what it
 * costs in the reference system, and the abort scenario is suspended well before its task ends.
 */
export function workSeconds([cores, seconds]: Stress, nodeCores: number): number {
  return (seconds * cores) / Math.min(cores, Math.max(1, nodeCores));
}

const input = (task: Stress, options: DemoOptions) =>
  Buffer.from(`${task[0]}-${Number((workSeconds(task, options.nodeCores) / options.speed).toFixed(3))}`).toString('base64');
const planId = (speed: number) => `demo-x${speed}`;

/** Price plan and function shared by all scenarios at this speed (idempotent to redo). */
export async function prepare(client: MeshClient, options: DemoOptions): Promise<void> {
  const cpuPerCoreHour = formatAmount(REFERENCE_CPU_PRICE * BigInt(options.speed));
  options.log(`price plan ${planId(options.speed)}: ${cpuPerCoreHour} GRC per core-hour (6 x speed ${options.speed})`);
  if (options.nodeCores < 3)
    options.log(`this node gives a container ${options.nodeCores} cores: tasks asking more run longer to do the reference's core-seconds`);
  await call(client, setPricePlanRequest, { planId: planId(options.speed), cpuPerCoreHour, memoryPerGibHour: '0', billing: 'used' });
  await call(client, deployFunctionRequest, {
    functionId: STRESS_FUNCTION,
    image: options.image,
    script: readFileSync(join(ROOT, 'cli', 'demo', 'stress.sh'), 'utf8'),
    cpuMinMillis: 250,
    cpuMaxMillis: 4000,
    cpuInitialMillis: 1000,
    memoryBytes: 128 * 1024 * 1024,
    timeoutMs: Math.ceil((3000 * 1000) / options.speed) + 60_000,
    maxAttempts: 5,
    pricePlanId: planId(options.speed),
  });
}

export async function runScenario(name: ScenarioName, client: MeshClient, store: EventStore, options: DemoOptions): Promise<ScenarioSummary> {
  const walletId = `demo-${name}-${Date.now().toString(36)}`;
  const watch = new ScenarioWatch(walletId);
  watch.start(store, await store.headPosition());
  const { speed, log } = options;
  // Time budgets in reference seconds, stretched like the longest task on this node.
  const stretch = 3 / Math.min(3, Math.max(1, options.nodeCores));
  const sec = (s: number) => Math.ceil((s * 1000 * stretch) / speed);
  const slack = 60_000 + options.idleTimeoutMs * 3;
  const submit = async (tasks: Stress[]) => {
    for (const t of tasks) {
      const { data } = await call(client, submitTaskRequest, { functionId: STRESS_FUNCTION, walletId, input: { inline: input(t, options) } });
      log(`  submitted ${t[0]}-${t[1]} as ${data.taskId}`);
    }
  };
  const deposit = async (amount: string) => {
    await call(client, depositRequest, { walletId, amount, reference: `${walletId}-${watch.balances.length}` });
    log(`  deposited ${amount} GRC`);
  };
  const waitIdleStop = async () => {
    const before = watch.containerStops.length;
    await watch.until(
      () => watch.containerStops.slice(before).some((s) => s.reason === 'idle') || watch.containerStops.some((s) => s.reason === 'idle'),
      options.idleTimeoutMs + slack,
      'the idle container to stop',
    );
    log('  container stopped after going idle');
  };
  try {
    log(`scenario ${name}: wallet ${walletId}`);
    await call(client, openWalletRequest, { walletId, kind: 'user', maxDebt: '0.5', minBalance: '0', policy: 'greedy' });
    if (name === 'normal' || name === 'debt') {
      await deposit(name === 'normal' ? '4' : '1');
      await watch.until(() => watch.standing === 'normal', 30_000, 'the wallet to be in good standing');
      await submit(FIRST);
      if (name === 'normal') {
        await watch.until(() => watch.count('succeeded') === 5, sec(1100) + slack, 'the first five tasks');
      } else {
        await watch.until(() => watch.standings.some((s) => s.to === 'overdrawn'), sec(1100) + slack, 'the wallet to go overdrawn');
        log('  wallet overdrawn: container throttled, no new task starts');
        await watch.until(() => watch.count('succeeded') === 3, sec(1100) + slack, 'the third task to finish while throttled');
        log(`  third task finished; ${watch.count('pending')} tasks wait for funds`);
      }
      await waitIdleStop();
      await deposit('2');
      await submit(SECOND);
      if (name === 'normal') {
        await watch.until(() => watch.count('succeeded') === 9, sec(2000) + slack, 'all nine tasks');
      } else {
        // 1 + 2 GRC do not pay for all nine tasks at the reference prices: the second batch drains
        // the wallet again, and while it is overdrawn no new task starts. Each time the tasks left
        // wait for funds (nothing running), a top-up lets them go on.
        for (let topUps = 0; watch.count('succeeded') < 9; topUps++) {
          const stalled = () =>
            watch.count('running') === 0 && watch.count('pending') > 0 && (watch.standing === 'overdrawn' || watch.standing === 'suspended');
          await watch.until(() => watch.count('succeeded') === 9 || stalled(), sec(2000) + slack, 'all nine tasks or a stall for funds');
          if (watch.count('succeeded') === 9) break;
          if (topUps >= 3) throw new Error(`${watch.count('pending')} tasks still wait for funds after ${topUps} top-ups`);
          log(`  funds ran out again: ${watch.count('pending')} tasks wait; topping up`);
          await deposit('1');
        }
      }
    } else {
      await deposit('1');
      await watch.until(() => watch.standing === 'normal', 30_000, 'the wallet to be in good standing');
      await submit([[3, 1000]]);
      await watch.until(() => watch.standings.some((s) => s.to === 'overdrawn'), sec(1000) + slack, 'the wallet to go overdrawn');
      log('  wallet overdrawn: container throttled');
      await watch.until(() => watch.standings.some((s) => s.to === 'suspended'), sec(1500) + slack, 'the wallet to be suspended');
      await watch.until(() => watch.aborts.length > 0 && watch.count('pending') === 1, 30_000, 'the task to be aborted and requeued');
      log('  wallet suspended: task aborted and back in the pending pool');
      await deposit('6');
      await watch.until(() => watch.count('succeeded') === 1, sec(1000) + slack, 'the task to run again and succeed');
      log('  deposit covered the debt: the task ran again and succeeded');
    }
    return summarise(name, walletId, watch, true);
  } catch (err) {
    return summarise(name, walletId, watch, false, messageOf(err));
  } finally {
    await watch.stop();
  }
}

function summarise(scenario: ScenarioName, walletId: string, w: ScenarioWatch, ok: boolean, error?: string): ScenarioSummary {
  const balances = w.balances.map((b) => parseAmount(b.balance, undefined, { allowNegative: true, allowZero: true }));
  const min = balances.reduce((a, b) => (b < a ? b : a), balances[0] ?? 0n);
  const at = (to: string) => {
    const s = w.standings.find((x) => x.to === to);
    return s ? Number(((s.atMs - w.startedAtMs) / 1000).toFixed(1)) : undefined;
  };
  return {
    scenario,
    walletId,
    ok,
    error,
    tasksSucceeded: w.count('succeeded'),
    tasksFailed: w.count('failed'),
    aborts: w.aborts.length,
    requeues: [...w.tasks.values()].reduce((n, t) => n + t.requeues, 0),
    minBalance: formatAmount(min),
    finalBalance: w.balances[w.balances.length - 1]?.balance ?? '0',
    throttledAtS: at('overdrawn'),
    suspendedAtS: at('suspended'),
    durationS: Number(((Date.now() - w.startedAtMs) / 1000).toFixed(1)),
  };
}
