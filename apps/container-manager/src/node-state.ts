import type { Known } from './append';
import type { CgroupPaths } from './docker/cgroup';
import type { ContainerState } from './domain/container-decider';
import type { ExecutionRef, ExecutionState } from './domain/execution-decider';
import type { SampleCursor } from './domain/sample-window';

/** How the node itself ends an execution (the script's own exit is then not reported). */
export type ExecutionEnd = 'timeout' | 'suspended' | 'cancelled' | 'superseded' | 'agent-restart';

/** Who claimed the one ending of an execution: the script's exit, a failure to start it, or the node (ExecutionEnd). */
export type Ending = ExecutionEnd | 'script' | 'docker-error';

/** stderrTail of the agent-restart failures. */
export const RESTARTED_DETAIL = 'the container-manager restarted while the task ran';
export const STOPPED_DETAIL = 'the container-manager stopped while the task ran';

/** An execution running on this node. */
export interface LiveExecution {
  ref: ExecutionRef;
  /** The task's owner (tenant id or `operator`): its output goes to that owner's bucket. */
  owner: string;
  timeoutMs: number;
  /** When the run began; the script's start once it started. */
  startedAtMs: number;
  warm: boolean;
  /** What this node recorded in the execution stream. */
  stream: Known<ExecutionState>;
  /** Set once, by whoever ends the execution; the others then leave it alone. */
  ending?: Ending;
  timer?: NodeJS.Timeout;
  oomKillsBefore?: number;
}

/** A task container of this node. */
export interface LiveContainer {
  readonly containerId: string;
  readonly dockerId: string;
  readonly walletId: string;
  readonly functionId: string;
  readonly image: string;
  /** Limits in force in Docker. */
  cpuMillis: number;
  memoryBytes: number;
  readonly cpuMinMillis: number;
  readonly cpuMaxMillis: number;
  /** What this node recorded in the container stream (ContainerHandler keeps it). */
  stream: Known<ContainerState>;
  status: 'idle' | 'busy' | 'stopping';
  execution?: LiveExecution;
  idleTimer?: NodeJS.Timeout;
  readonly cgroup?: CgroupPaths;
  /** Sampling: the last reading; `finalTaken` once the closing sample was read. */
  cursor: SampleCursor;
  finalTaken: boolean;
  /** Decisions applied or being applied (a redelivered decision is not applied twice). */
  readonly appliedDecisions: Set<string>;
  /** The stop in progress (stopping is idempotent). */
  stopping?: Promise<void>;
}

/** The node's moving state, shared by the engine and its collaborators. */
export class NodeState {
  readonly containers = new Map<string, LiveContainer>();
  /** Executions whose ending is not yet being recorded. */
  readonly executions = new Map<string, LiveExecution>();
  reconciled = false;
  dockerError?: string;

  constructor(readonly nodeId: string) {}

  containerRef(c: LiveContainer): { containerId: string; nodeId: string; walletId: string; functionId: string } {
    return { containerId: c.containerId, nodeId: this.nodeId, walletId: c.walletId, functionId: c.functionId };
  }
}
