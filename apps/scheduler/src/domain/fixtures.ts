import type { FunctionSpec } from '@mesh/contracts';
import type { TaskEvent } from './task-decider';

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

const ref = { taskId: 't1', functionId: 'fn', walletId: 'w1' };

export const submitted = (maxAttempts = 3, priority = 0): TaskEvent => ({
  type: 'TaskSubmitted',
  data: { ...ref, input: { inline: 'aGk=' }, priority, maxAttempts, submittedAtMs: 1000 },
});
export const dispatched = (attempt: number, nodeId = 'n1'): TaskEvent => ({
  type: 'TaskDispatched',
  data: { ...ref, attempt, executionId: `t1-${attempt}`, nodeId, function: fnSpec(), input: { inline: 'aGk=' }, dispatchedAtMs: 2000 },
});
export const running = (attempt: number, nodeId = 'n1'): TaskEvent => ({
  type: 'TaskRunning',
  data: { ...ref, attempt, executionId: `t1-${attempt}`, nodeId, containerId: 'c1' },
});
export const requeued = (attempt: number, reason: 'aborted' | 'node-lost' | 'agent-restart' | 'infrastructure', detail: string): TaskEvent => ({
  type: 'TaskRequeued',
  data: { ...ref, attempt, reason, detail },
});
