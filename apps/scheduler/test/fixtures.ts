import {
  FunctionDeployed,
  GENESIS_HASH,
  NodeRegistered,
  StandingChanged,
  TaskDispatched,
  TaskRequeued,
  TaskRunning,
  TaskSubmitted,
  WalletOpened,
  eventOf,
  type EventData,
  type EventDefinition,
  type EventOf,
  type FunctionSpec,
  type Standing,
  type TaskEvent,
} from '@mesh/contracts';
import type { FoldedEvent, ViewEvent } from '../src/domain/scheduler-view';

/** Shared test data for the scheduler's domain specs and the benchmark. */
export const fnSpec = (overrides: Partial<FunctionSpec> = {}): FunctionSpec => ({
  functionId: 'fn',
  version: 1,
  image: 'mesh/task-base:latest',
  script: 'echo hi',
  cpuMinMillis: 250,
  cpuMaxMillis: 4000,
  cpuInitialMillis: 1000,
  memoryBytes: 256 * 1024 * 1024,
  timeoutMs: 60_000,
  network: false,
  maxAttempts: 3,
  ...overrides,
});

/** A decided event of `definition`, its data checked against the schema (eventOf). */
export function decided<D extends EventDefinition>(definition: D, data: EventData<D>): EventOf<D> {
  const { type, data: checked } = eventOf(definition, 'fixture', data);
  return { type, data: checked };
}

const ref = { taskId: 't1', functionId: 'fn', walletId: 'w1' };

export const submitted = (maxAttempts = 3, priority = 0): TaskEvent =>
  decided(TaskSubmitted, { ...ref, input: { inline: 'aGk=' }, priority, maxAttempts, submittedAtMs: 1000 });
export const dispatched = (attempt: number, nodeId = 'n1'): TaskEvent =>
  decided(TaskDispatched, {
    ...ref,
    attempt,
    executionId: `t1-${attempt}`,
    nodeId,
    function: fnSpec(),
    input: { inline: 'aGk=' },
    dispatchedAtMs: 2000,
  });
export const running = (attempt: number, nodeId = 'n1'): TaskEvent =>
  decided(TaskRunning, { ...ref, attempt, executionId: `t1-${attempt}`, nodeId, containerId: 'c1' });
export const requeued = (attempt: number, reason: EventData<typeof TaskRequeued>['reason'], detail: string): TaskEvent =>
  decided(TaskRequeued, { ...ref, attempt, reason, detail });

// --- the view's events (built from their definitions, so the data is what the log would hold) ---

/** `event` at `revision` of `stream`, as the view folds it. */
export const folded = (stream: string, revision: number, event: ViewEvent): FoldedEvent => ({ ...event, stream, revision });

export const functionDeployed = (spec: FunctionSpec) => decided(FunctionDeployed, spec);

export const walletOpened = (walletId: string, policy: 'greedy' | 'conservative' = 'greedy', kind: 'user' | 'provider' = 'user') =>
  decided(WalletOpened, { walletId, currency: 'GRC', balanceAfter: '0', prevHash: GENESIS_HASH, kind, maxDebt: '0', minBalance: '0', policy, openedAtMs: 0 });

export const standingChanged = (walletId: string, to: Standing) =>
  decided(StandingChanged, {
    walletId,
    from: null,
    to,
    balance: '0',
    currency: 'GRC',
    maxDebt: '0',
    minBalance: '0',
    policy: 'greedy',
    causeEventId: `${walletId}-cause`,
    causeRevision: 0,
    changedAtMs: 0,
  });

export const nodeRegistered = (nodeId: string, cpuMillis: number, memoryBytes: number) =>
  decided(NodeRegistered, { nodeId, cpuMillis, memoryBytes, labels: {}, registeredAtMs: 0 });

export const taskSubmitted = (task: { taskId: string; walletId: string; functionId: string; priority?: number; submittedAtMs?: number; tenantId?: string }) =>
  decided(TaskSubmitted, {
    taskId: task.taskId,
    functionId: task.functionId,
    walletId: task.walletId,
    ...(task.tenantId !== undefined ? { tenantId: task.tenantId } : {}),
    input: { inline: '' },
    priority: task.priority ?? 0,
    maxAttempts: 3,
    submittedAtMs: task.submittedAtMs ?? 1,
  });
