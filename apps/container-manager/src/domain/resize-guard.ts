import { MEMORY_MIN_BYTES } from '../docker/sandbox';

/**
 * A ScalingDecided is written by the scaler, but the container-manager is the one that applies it,
 * so it is also the one that keeps it inside the rules, whatever the event says (a forged or buggy
 * decision must not give a container more than its function allows or its node has):
 *   - a decision for a container this node does not run, or whose wallet/function differ from the
 *     container's, is refused (nothing applied, nothing recorded);
 *   - CPU is clamped to [cpuMinMillis, min(cpuMaxMillis, node CPU)] of the container;
 *   - memory is clamped to [MEMORY_MIN_BYTES, node memory].
 * A clamped decision is applied with the clamped limits (ContainerResized records them) and the
 * reason is returned for the log.
 */
export interface ResizeTarget {
  walletId: string;
  functionId: string;
  cpuMinMillis: number;
  cpuMaxMillis: number;
}

export interface NodeCapacity {
  cpuMillis: number;
  memoryBytes: number;
}

export interface ResizeRequest {
  walletId: string;
  functionId: string;
  toCpuMillis: number;
  toMemoryBytes: number;
}

export type ResizeVerdict = { apply: true; toCpuMillis: number; toMemoryBytes: number; clamped: string[] } | { apply: false; refused: string };

function clamp(value: number, min: number, max: number): number {
  return Math.min(max, Math.max(min, value));
}

export function guardResize(request: ResizeRequest, container: ResizeTarget | undefined, node: NodeCapacity): ResizeVerdict {
  if (!container) return { apply: false, refused: 'this node runs no such container' };
  if (request.walletId !== container.walletId || request.functionId !== container.functionId) {
    return {
      apply: false,
      refused: `the decision names ${request.walletId}/${request.functionId}, the container runs ${container.walletId}/${container.functionId}`,
    };
  }
  const cpuMax = Math.min(container.cpuMaxMillis, node.cpuMillis);
  const cpuMin = Math.min(container.cpuMinMillis, cpuMax);
  const memoryMax = Math.max(MEMORY_MIN_BYTES, node.memoryBytes);
  const toCpuMillis = clamp(request.toCpuMillis, cpuMin, cpuMax);
  const toMemoryBytes = clamp(request.toMemoryBytes, MEMORY_MIN_BYTES, memoryMax);
  const clamped: string[] = [];
  if (toCpuMillis !== request.toCpuMillis) {
    clamped.push(
      `CPU ${request.toCpuMillis} millicores clamped to ${toCpuMillis} (function cpuMin ${container.cpuMinMillis}, cpuMax ${container.cpuMaxMillis}, node ${node.cpuMillis})`,
    );
  }
  if (toMemoryBytes !== request.toMemoryBytes) {
    clamped.push(`memory ${request.toMemoryBytes} bytes clamped to ${toMemoryBytes} (minimum ${MEMORY_MIN_BYTES}, node ${node.memoryBytes})`);
  }
  return { apply: true, toCpuMillis, toMemoryBytes, clamped };
}
