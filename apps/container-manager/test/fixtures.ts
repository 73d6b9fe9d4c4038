import type { ContainerEvent, ExecutionEvent } from '@mesh/contracts';
import type { ContainerResizedData, ContainerStartedData, ContainerStoppedData, StopReason } from '../src/domain/container-decider';
import type { ExecutionRef, ExecutionStartedData, TerminalExecutionEvent } from '../src/domain/execution-decider';

/** Events of the container-manager's aggregates for the decider specs. */
export const containerRef = { containerId: 'c1', nodeId: 'n1', walletId: 'w1', functionId: 'f1' };
export const executionRef: ExecutionRef = { executionId: 't1-1', taskId: 't1', attempt: 1, ...containerRef };

export function startedData(startedAtMs = 1000): ExecutionStartedData {
  return { ...executionRef, startedAtMs, warm: false };
}

export const executionStarted = (startedAtMs = 1000): ExecutionEvent => ({ type: 'ExecutionStarted', data: startedData(startedAtMs) });

export const executionSucceeded = (durationMs = 50): TerminalExecutionEvent => ({
  type: 'ExecutionSucceeded',
  data: { ...executionRef, outputRef: { bucket: 'mesh-output', key: 't1-1' }, durationMs },
});

export const executionAborted = (reason: 'suspended' | 'cancelled' | 'superseded' = 'suspended'): TerminalExecutionEvent => ({
  type: 'ExecutionAborted',
  data: { ...executionRef, reason, abortedAtMs: 2000 },
});

export const executionTimedOut = (): TerminalExecutionEvent => ({ type: 'ExecutionTimedOut', data: { ...executionRef, timeoutMs: 500 } });

export function containerStartedData(cpuMillis = 1000, memoryBytes = 128 * 1024 * 1024): ContainerStartedData {
  return {
    ...containerRef,
    dockerId: 'd1',
    image: 'mesh/task-base:latest',
    cpuMillis,
    memoryBytes,
    cpuMinMillis: 100,
    cpuMaxMillis: 2000,
    coldStartMs: 120,
    startedAtMs: 1000,
  };
}

export function resizedData(decisionId: string, toCpuMillis: number, toMemoryBytes = 128 * 1024 * 1024): ContainerResizedData {
  return {
    ...containerRef,
    decisionId,
    fromCpuMillis: 1000,
    toCpuMillis,
    fromMemoryBytes: 128 * 1024 * 1024,
    toMemoryBytes,
    applyMs: 3,
    appliedAtMs: 1500,
  };
}

export const stoppedData = (reason: StopReason = 'idle'): ContainerStoppedData => ({ ...containerRef, reason, stoppedAtMs: 3000 });

export const containerStarted = (): ContainerEvent => ({ type: 'ContainerStarted', data: containerStartedData() });
export const containerResized = (decisionId: string, toCpuMillis: number): ContainerEvent => ({
  type: 'ContainerResized',
  data: resizedData(decisionId, toCpuMillis),
});
export const containerStopped = (reason: StopReason = 'idle'): ContainerEvent => ({ type: 'ContainerStopped', data: stoppedData(reason) });
