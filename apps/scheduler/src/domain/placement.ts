/**
 * Placement: a pure function from the nodes view and one task's demand to a node (or the reason
 * there is none). Rules, in order:
 *  1. only registered, alive nodes that have not left and are not draining; a network-enabled
 *     function only on a node that offers network (an engine without bridge: `mesh up --nodes`);
 *  2. never a node where a task of the same (wallet, function) is dispatched/running: its single
 *     warm container for that pair runs one task at a time (the task waits or goes elsewhere);
 *  3. enough free CPU and memory: capacity minus what the scheduler reserved for the tasks it put
 *     there (each reserves its function's initial CPU and memory), and minus the heartbeat's used
 *     figures when they are higher (containers the scheduler does not know about, idle warm ones).
 *     A node holding an idle warm container of the pair only needs the reserved check: that
 *     container is already inside its heartbeat's used figures;
 *  4. prefer a node with an idle warm container of the pair, then the lowest score
 *     (load after placement + (1 - reliability) * RELIABILITY_WEIGHT), then the node id (stable).
 */

/** How much one unit of unreliability (a node that lost every task) weighs against full load. */
export const RELIABILITY_WEIGHT = 0.5;

export interface PlacementNode {
  nodeId: string;
  /** Registered (from the log), not left, and heard from within the liveness window. */
  schedulable: boolean;
  cpuMillis: number;
  memoryBytes: number;
  reservedCpuMillis: number;
  reservedMemoryBytes: number;
  /** From the last heartbeat; undefined before the first. */
  usedCpuMillis?: number;
  usedMemoryBytes?: number;
  /** `walletId/functionId` keys of idle warm containers (last heartbeat). */
  idleKeys: ReadonlySet<string>;
  /** `walletId/functionId` keys with a task dispatched/running here -> count. */
  busyKeys: ReadonlyMap<string, number>;
  /** 0..1 */
  reliability: number;
  /** Runs network-enabled functions (NodeRegistered.network; undefined: true). */
  network?: boolean;
}

export interface Demand {
  /** `walletId/functionId` */
  key: string;
  cpuMillis: number;
  memoryBytes: number;
  /** The function is network-enabled (undefined: false). */
  network?: boolean;
}

export type Placement =
  | { ok: true; nodeId: string; warm: boolean }
  | { ok: false; reason: 'no-nodes' | 'no-network-node' | 'container-busy' | 'no-capacity' | 'exceeds-node-capacity' };

export const containerKey = (walletId: string, functionId: string) => `${walletId}/${functionId}`;

export function freeCpuMillis(node: PlacementNode, warm = false): number {
  const used = warm ? node.reservedCpuMillis : Math.max(node.reservedCpuMillis, node.usedCpuMillis ?? 0);
  return node.cpuMillis - used;
}

export function freeMemoryBytes(node: PlacementNode, warm = false): number {
  const used = warm ? node.reservedMemoryBytes : Math.max(node.reservedMemoryBytes, node.usedMemoryBytes ?? 0);
  return node.memoryBytes - used;
}

/** The share of the node's tightest resource that would be in use after placing `demand`. */
function loadAfter(node: PlacementNode, demand: Demand, warm: boolean): number {
  const cpu = (node.cpuMillis - freeCpuMillis(node, warm) + demand.cpuMillis) / node.cpuMillis;
  const memory = node.memoryBytes > 0 ? (node.memoryBytes - freeMemoryBytes(node, warm) + demand.memoryBytes) / node.memoryBytes : 0;
  return Math.max(cpu, memory);
}

export function place(nodes: Iterable<PlacementNode>, demand: Demand): Placement {
  let best: PlacementNode | undefined;
  let bestWarm = false;
  let bestScore = Infinity;
  let schedulable = 0;
  let withoutNetwork = 0;
  let busy = 0;
  let bigEnough = 0;
  for (const node of nodes) {
    if (!node.schedulable) continue;
    schedulable++;
    if (demand.network === true && node.network === false) {
      withoutNetwork++;
      continue;
    }
    if (demand.cpuMillis <= node.cpuMillis && demand.memoryBytes <= node.memoryBytes) bigEnough++;
    if ((node.busyKeys.get(demand.key) ?? 0) > 0) {
      busy++;
      continue;
    }
    const warm = node.idleKeys.has(demand.key);
    if (freeCpuMillis(node, warm) < demand.cpuMillis || freeMemoryBytes(node, warm) < demand.memoryBytes) continue;
    if (bestWarm && !warm) continue;
    const score = loadAfter(node, demand, warm) + (1 - node.reliability) * RELIABILITY_WEIGHT;
    const better = (warm && !bestWarm) || score < bestScore || (score === bestScore && best !== undefined && node.nodeId < best.nodeId);
    if (better) {
      best = node;
      bestWarm = warm;
      bestScore = score;
    }
  }
  if (best) return { ok: true, nodeId: best.nodeId, warm: bestWarm };
  if (schedulable === 0) return { ok: false, reason: 'no-nodes' };
  if (withoutNetwork === schedulable) return { ok: false, reason: 'no-network-node' };
  if (bigEnough === 0) return { ok: false, reason: 'exceeds-node-capacity' };
  return { ok: false, reason: busy > 0 ? 'container-busy' : 'no-capacity' };
}

/** Laplace-smoothed share of tasks that ended on the node rather than being lost with it. */
export const reliabilityOf = (completed: number, lost: number) => (completed + 1) / (completed + lost + 1);
