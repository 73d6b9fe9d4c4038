import { Logger } from '@nestjs/common';
import { KeyedMutex, messageOf } from '@mesh/common';
import { isEventOf, nodeEvents, streamName, type RecordedEvent } from '@mesh/contracts';
import type { EventStore } from '@mesh/eventstore/port';
import { decideAndAppend, type Known } from './append';
import { eventId } from './domain/event-ids';
import { evolveNodeDrain, initialNodeDrainState, nodeDrainDecider, type NodeDrainCommand, type NodeDrainState } from './domain/node-decider';

/**
 * Before a draining node leaves, its drain must have been seen this long: a dispatch the scheduler
 * wrote just before it folded the drain reaches this node on another consumer, and should start here
 * rather than be requeued by the NodeLeft. (One that arrives later is requeued: still correct.)
 */
export const DRAIN_SETTLE_MS = 3000;

/** The folded drain state of a node stream. */
export function foldNodeDrain(nodeId: string, history: RecordedEvent[]): Known<NodeDrainState> {
  let state = initialNodeDrainState();
  for (const event of history) {
    if (!isEventOf(event, nodeEvents)) throw new Error(`node ${nodeId}: ${event.type} is not a node event`);
    state = evolveNodeDrain(state, event);
  }
  return { state, version: history.length - 1 };
}

/**
 * Drains (docs/cluster.md, "Worker nodes"): the operator's drain-node request, answered by any
 * container-manager, records NodeDrainRequested on the target's stream; the target (this class in
 * its own process) sees it on its node consumer or at start, and once it runs no execution records
 * NodeLeft (reason drained). It keeps running (heartbeats, idle containers time out) and takes no
 * dispatch after that; its next start registers it afresh.
 */
export class NodeDrain {
  private readonly log: Logger;
  private readonly mutex = new KeyedMutex();
  /** When this node learned it is draining (undefined: not draining). */
  private drainSeenAtMs?: number;
  private leaving = false;
  /** This node left by drain (NodeLeft drained recorded). */
  left = false;

  constructor(
    private readonly store: EventStore,
    private readonly nodeId: string,
  ) {
    this.log = new Logger(`container-manager:${nodeId}`);
  }

  get draining(): boolean {
    return this.drainSeenAtMs !== undefined && !this.left;
  }

  private async load(nodeId: string): Promise<Known<NodeDrainState>> {
    return foldNodeDrain(nodeId, await this.store.read(streamName('node', nodeId)));
  }

  private run(nodeId: string, command: NodeDrainCommand): Promise<Known<NodeDrainState>> {
    return this.mutex.run(nodeId, async () => {
      const known = await this.load(nodeId);
      return decideAndAppend(
        this.store,
        streamName('node', nodeId),
        nodeDrainDecider,
        command,
        known,
        () => this.load(nodeId),
        (event) => ({
          id: event.type === 'NodeDrainRequested' ? eventId('node', nodeId, 'drain', command.nowMs) : eventId('node', nodeId, 'drained', command.nowMs),
          type: event.type,
          data: event.data,
        }),
      );
    });
  }

  /** The operator's request (any node answers it, for any node). */
  async request(nodeId: string, nowMs = Date.now()): Promise<{ nodeId: string; state: 'draining'; requestedAtMs: number }> {
    const after = await this.run(nodeId, { kind: 'request-drain', nodeId, nowMs });
    if (nodeId === this.nodeId) this.seen(nowMs);
    return { nodeId, state: 'draining', requestedAtMs: after.state.drainRequestedAtMs ?? nowMs };
  }

  /** At start, after registering: a drain asked before (or while this node was down) goes on. */
  async resume(nowMs = Date.now()): Promise<void> {
    const own = await this.load(this.nodeId);
    if (own.state.draining) {
      this.log.warn(
        `node ${this.nodeId} is draining (asked at ${new Date(own.state.drainRequestedAtMs ?? nowMs).toISOString()}): it takes no new task and leaves once idle`,
      );
      this.seen(nowMs);
    }
  }

  /** A node event from the consumer: our own drain request. */
  observe(event: RecordedEvent, nowMs = Date.now()): void {
    if (event.type === 'NodeDrainRequested' && isEventOf(event, nodeEvents) && event.data.nodeId === this.nodeId) this.seen(nowMs);
  }

  private seen(nowMs: number): void {
    if (this.drainSeenAtMs === undefined && !this.left) {
      this.drainSeenAtMs = nowMs;
      this.log.warn(`node ${this.nodeId} draining: running tasks finish, then it leaves`);
    }
  }

  /** Each heartbeat: a draining node with no execution left (and the settle time past) leaves. */
  tick(executions: number, nowMs = Date.now()): void {
    if (!this.draining || this.leaving || executions > 0 || this.drainSeenAtMs === undefined || nowMs - this.drainSeenAtMs < DRAIN_SETTLE_MS) return;
    this.leaving = true;
    this.run(this.nodeId, { kind: 'complete-drain', nodeId: this.nodeId, nowMs })
      .then((after) => {
        this.left = after.state.left;
        if (this.left) this.log.warn(`node ${this.nodeId} drained: it has left (NodeLeft, reason drained)`);
      })
      .catch((err) => this.log.warn(`drain of ${this.nodeId} not completed (tried again next beat): ${messageOf(err)}`))
      .finally(() => (this.leaving = false));
  }
}
