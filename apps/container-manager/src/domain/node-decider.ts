import { DomainError, type EventData, type NodeEvent } from '@mesh/contracts';
import type { NodeDrainRequested, NodeLeft } from '@mesh/contracts';
import type { Decider } from '@mesh/eventstore/decider';

/**
 * The node aggregate's drain (stream `node-<nodeId>`):
 *   registered (NodeRegistered) -> draining (NodeDrainRequested) -> left (NodeLeft, reason drained)
 * A drain survives a crash of the node's container-manager and its registration again (the operator
 * asked for it; only NodeLeft ends it). A node that registers after it left starts afresh (ready).
 * Invariants: only a registered node that has not left can be drained; a drain is recorded once; a
 * node leaves by drain only when it is draining (its running tasks having ended: the caller's check).
 */
export interface NodeDrainState {
  registered: boolean;
  left: boolean;
  draining: boolean;
  drainRequestedAtMs?: number;
}

export type NodeDrainCommand =
  | { kind: 'request-drain'; nodeId: string; nowMs: number }
  /** The node itself, with no execution left: leave. */
  | { kind: 'complete-drain'; nodeId: string; nowMs: number };

type DrainEvent = { type: 'NodeDrainRequested'; data: EventData<typeof NodeDrainRequested> } | { type: 'NodeLeft'; data: EventData<typeof NodeLeft> };

export const initialNodeDrainState = (): NodeDrainState => ({ registered: false, left: false, draining: false });

export function evolveNodeDrain(state: NodeDrainState, event: NodeEvent): NodeDrainState {
  switch (event.type) {
    case 'NodeRegistered':
      // After a NodeLeft the node starts afresh; after a crash (no NodeLeft) a drain goes on.
      return state.left ? { registered: true, left: false, draining: false } : { ...state, registered: true };
    case 'NodeDrainRequested':
      return { ...state, draining: true, drainRequestedAtMs: event.data.requestedAtMs };
    case 'NodeLeft':
      return { registered: state.registered, left: true, draining: false };
  }
}

export function decideNodeDrain(command: NodeDrainCommand, state: NodeDrainState): DrainEvent[] {
  if (command.kind === 'request-drain') {
    if (!state.registered) throw new DomainError('unknown_node', `node ${command.nodeId} never registered`);
    if (state.left) throw new DomainError('node_left', `node ${command.nodeId} has left; it can be drained once it registers again`);
    if (state.draining) return [];
    return [{ type: 'NodeDrainRequested', data: { nodeId: command.nodeId, requestedAtMs: command.nowMs } }];
  }
  if (!state.draining || state.left) return [];
  return [{ type: 'NodeLeft', data: { nodeId: command.nodeId, reason: 'drained', leftAtMs: command.nowMs } }];
}

export const nodeDrainDecider: Decider<NodeDrainState, NodeDrainCommand, NodeEvent> = {
  initialState: initialNodeDrainState,
  evolve: evolveNodeDrain,
  decide: decideNodeDrain,
};
