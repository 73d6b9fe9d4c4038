import { setTimeout as sleep } from 'node:timers/promises';
import { messageOf, retry } from '@mesh/common';
import {
  depositRequest,
  deployFunctionRequest,
  openWalletRequest,
  setPricePlanRequest,
  submitTaskRequest,
  type RequestData,
  type RequestDefinition,
  type TaskInput,
} from '@mesh/contracts';
import { RequestError, type MeshClient } from '@mesh/runtime';
import type { Rng } from './faults';
import { TASK_IMAGE } from './stack';

/**
 * The soak's task: a CPU-busy loop for `<seconds>` of wall time, then exit `<code>`. Input:
 * "<code>-<seconds>". A non-zero code is a real script failure (the only kind allowed to fail).
 */
export const CHAOS_SCRIPT = `#!/bin/bash
set -u
spec="$(cat "$1")"
code="\${spec%-*}"
secs="\${spec#*-}"
timeout "$secs" bash -c 'while :; do :; done'
echo "burned 1 core for \${secs} s" > "$2/result.txt"
exit "$code"
`;

/** 3600 GRC per core-hour is 1 GRC per core-second: a 1-5 s task costs 1-5 GRC. */
export const CPU_PER_CORE_HOUR = '3600';
/** Every FAILING_EVERY-th task (by submission order) exits 3 on purpose. */
export const FAILING_EVERY = 7;
export const FAILING_EXIT_CODE = 3;

export type WalletRole = 'funded' | 'throttled' | 'suspended';

export interface WalletPlan {
  walletId: string;
  role: WalletRole;
  /** First deposit (GRC) and the debt allowed before suspension (GRC). */
  deposit: string;
  maxDebt: string;
}

export interface PlannedTask {
  taskId: string;
  walletId: string;
  exitCode: number;
  seconds: number;
  /** When it is submitted, from the start of the fault window. */
  atMs: number;
}

const taskInput = (t: { exitCode: number; seconds: number }): TaskInput => ({ inline: Buffer.from(`${t.exitCode}-${t.seconds}`).toString('base64') });

/** The exit code a task of the workload ends with, read back from its input; undefined for any other input. */
export function expectedExit(input: TaskInput): number | undefined {
  if (!('inline' in input)) return undefined;
  const m = /^(\d{1,3})-(\d+(?:\.\d+)?)$/.exec(Buffer.from(input.inline, 'base64').toString());
  return m ? Number(m[1]) : undefined;
}

/**
 * Five wallets: two funded (never in debt), one that goes overdrawn (throttled, new tasks wait) with a
 * large debt allowance, two with a small allowance that reach it (suspended: the running task is
 * aborted and requeued). `tasksPerWallet` tasks of 1-5 s each, submitted at random times over the
 * first 60% of the window; every 7th exits 3.
 */
export function planWorkload(runId: string, tasksPerWallet: number, windowMs: number, rng: Rng): { wallets: WalletPlan[]; tasks: PlannedTask[] } {
  const wallets: WalletPlan[] = [
    { walletId: `${runId}-funded-a`, role: 'funded', deposit: '1000', maxDebt: '1' },
    { walletId: `${runId}-funded-b`, role: 'funded', deposit: '1000', maxDebt: '1' },
    { walletId: `${runId}-throttled`, role: 'throttled', deposit: '6', maxDebt: '1000' },
    { walletId: `${runId}-suspended-a`, role: 'suspended', deposit: '4', maxDebt: '2' },
    { walletId: `${runId}-suspended-b`, role: 'suspended', deposit: '3', maxDebt: '1' },
  ];
  const tasks: PlannedTask[] = [];
  for (let i = 0; i < tasksPerWallet * wallets.length; i++) {
    const wallet = wallets[i % wallets.length];
    tasks.push({
      taskId: `${runId}-t${String(i + 1).padStart(3, '0')}`,
      walletId: wallet.walletId,
      exitCode: (i + 1) % FAILING_EVERY === 0 ? FAILING_EXIT_CODE : 0,
      seconds: rng.int(1, 5),
      atMs: i < wallets.length ? 0 : rng.int(0, Math.floor(windowMs * 0.6)),
    });
  }
  tasks.sort((a, b) => a.atMs - b.atMs);
  return { wallets, tasks };
}

/**
 * Refusals are answers, not faults: the body is wrong or the state forbids it, and the same request
 * would be refused again. Anything else (timeout, no responders, the service's own store failing
 * mid-fault) is retried.
 */
const REFUSALS = new Set([
  'invalid_input',
  'task_exists',
  'unknown_function',
  'unknown_wallet',
  'provider_wallet',
  'exceeds_node_capacity',
  'reference_conflict',
]);
const transient = (err: unknown) => !(err instanceof RequestError) || !REFUSALS.has(err.code);

/**
 * A command sent through faults: retried (same body, so the same task id or deposit reference:
 * both are idempotent) for up to about a minute while NATS or the service is down.
 */
export async function send<D extends RequestDefinition>(client: MeshClient, definition: D, body: RequestData<D>, log?: (line: string) => void): Promise<void> {
  await retry(definition.subject, () => client.request(definition, body, 10_000), {
    attempts: 12,
    baseDelayMs: 500,
    maxDelayMs: 5000,
    retryable: transient,
    onRetry: (err, attempt) => log?.(`  ${definition.subject} attempt ${attempt} failed (${messageOf(err)}); retrying`),
  });
}

export class Workload {
  readonly functionId: string;
  readonly planId: string;
  readonly submitErrors: string[] = [];
  readonly deposits: { walletId: string; amount: string; reference: string; error?: string }[] = [];

  constructor(
    private readonly client: MeshClient,
    readonly runId: string,
    readonly wallets: WalletPlan[],
    readonly tasks: PlannedTask[],
    private readonly log: (line: string) => void,
  ) {
    this.functionId = `${runId}-burn`;
    this.planId = `${runId}-plan`;
  }

  /** Price plan, function and wallets with their first deposits (before any fault). */
  async prepare(): Promise<void> {
    await send(this.client, setPricePlanRequest, { planId: this.planId, cpuPerCoreHour: CPU_PER_CORE_HOUR, memoryPerGibHour: '0', billing: 'used' });
    await send(this.client, deployFunctionRequest, {
      functionId: this.functionId,
      image: TASK_IMAGE,
      script: CHAOS_SCRIPT,
      cpuMinMillis: 250,
      cpuMaxMillis: 1000,
      cpuInitialMillis: 1000,
      memoryBytes: 64 * 1024 * 1024,
      timeoutMs: 120_000,
      // Faults requeue attempts (engine restarts, lost nodes, aborts); the task must never run out of them.
      maxAttempts: 100,
      pricePlanId: this.planId,
    });
    for (const w of this.wallets) {
      await send(this.client, openWalletRequest, { walletId: w.walletId, kind: 'user', maxDebt: w.maxDebt, minBalance: '0', policy: 'greedy' });
      await this.deposit(w.walletId, w.deposit, `${w.walletId}-initial`);
    }
  }

  /** Submits every planned task at its time (from `startedAtMs`), through whatever faults happen meanwhile. */
  async submitAll(startedAtMs: number, signal?: AbortSignal): Promise<void> {
    for (const t of this.tasks) {
      const waitMs = startedAtMs + t.atMs - Date.now();
      if (waitMs > 0) await sleep(waitMs, undefined, { signal }).catch(() => undefined);
      if (signal?.aborted) return;
      try {
        await send(this.client, submitTaskRequest, { functionId: this.functionId, walletId: t.walletId, taskId: t.taskId, input: taskInput(t) }, this.log);
      } catch (err) {
        this.submitErrors.push(`${t.taskId}: ${messageOf(err)}`);
        this.log(`  submit ${t.taskId} FAILED: ${messageOf(err)}`);
      }
    }
  }

  async deposit(walletId: string, amount: string, reference: string): Promise<void> {
    try {
      await send(this.client, depositRequest, { walletId, amount, reference }, this.log);
      this.deposits.push({ walletId, amount, reference });
      this.log(`  deposited ${amount} GRC into ${walletId}`);
    } catch (err) {
      this.deposits.push({ walletId, amount, reference, error: messageOf(err) });
      this.log(`  deposit of ${amount} GRC into ${walletId} FAILED: ${messageOf(err)}`);
    }
  }
}
