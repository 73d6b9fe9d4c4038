import { DomainError, type ContainerEvent, type EventData } from '@mesh/contracts';
import type { ContainerResized, ContainerStarted, ContainerStopped } from '@mesh/contracts';
import type { Decider } from '@mesh/eventstore/decider';

/**
 * The container aggregate (stream `container-<containerId>`, one task container on this node):
 *   none -> started (ContainerStarted) -> resized* (ContainerResized, once per scaling decision) -> stopped (ContainerStopped).
 * Invariants: a container is announced once and stopped once; a decision is applied at most once;
 * nothing is recorded for a container that was never announced (a check: the node announces every
 * container it creates before anything else, and only adopts announced ones).
 */
export type ContainerStartedData = EventData<typeof ContainerStarted>;
export type ContainerResizedData = EventData<typeof ContainerResized>;
export type ContainerStoppedData = EventData<typeof ContainerStopped>;
export type StopReason = ContainerStoppedData['reason'];

export interface ContainerState {
  status: 'none' | 'started' | 'stopped';
  started?: ContainerStartedData;
  /** Limits now in force: those of the start, then of the last resize. */
  cpuMillis: number;
  memoryBytes: number;
  appliedDecisions: ReadonlySet<string>;
  stopReason?: StopReason;
}

export type ContainerCommand =
  { kind: 'start'; started: ContainerStartedData } | { kind: 'resize'; resized: ContainerResizedData } | { kind: 'stop'; stopped: ContainerStoppedData };

export function initialContainerState(): ContainerState {
  return { status: 'none', cpuMillis: 0, memoryBytes: 0, appliedDecisions: new Set() };
}

export function evolveContainer(state: ContainerState, event: ContainerEvent): ContainerState {
  switch (event.type) {
    case 'ContainerStarted':
      return { ...state, status: 'started', started: event.data, cpuMillis: event.data.cpuMillis, memoryBytes: event.data.memoryBytes };
    case 'ContainerResized':
      return {
        ...state,
        cpuMillis: event.data.toCpuMillis,
        memoryBytes: event.data.toMemoryBytes,
        appliedDecisions: new Set([...state.appliedDecisions, event.data.decisionId]),
      };
    case 'ContainerStopped':
      return { ...state, status: 'stopped', stopReason: event.data.reason };
  }
}

export function decideContainer(command: ContainerCommand, state: ContainerState): ContainerEvent[] {
  if (command.kind === 'start') return state.status === 'none' ? [{ type: 'ContainerStarted', data: command.started }] : [];
  if (state.status === 'none') throw new DomainError('container_not_started', `container ${containerIdOf(command)}: ${command.kind} before ContainerStarted`);
  if (state.status === 'stopped') return [];
  if (command.kind === 'resize') return state.appliedDecisions.has(command.resized.decisionId) ? [] : [{ type: 'ContainerResized', data: command.resized }];
  return [{ type: 'ContainerStopped', data: command.stopped }];
}

function containerIdOf(command: ContainerCommand): string {
  switch (command.kind) {
    case 'start':
      return command.started.containerId;
    case 'resize':
      return command.resized.containerId;
    case 'stop':
      return command.stopped.containerId;
  }
}

export const containerDecider: Decider<ContainerState, ContainerCommand, ContainerEvent> = {
  initialState: initialContainerState,
  evolve: evolveContainer,
  decide: decideContainer,
};
