import { Controller } from '@nestjs/common';
import { Ctx, Payload } from '@nestjs/microservices';
import {
  assertOperator,
  drainNodeRequest,
  isEvent,
  ScalingDecided,
  StandingChanged,
  TaskCancelled,
  TaskDispatched,
  TaskFailed,
  TaskRequeued,
  type RecordedEvent,
  type RequestData,
} from '@mesh/contracts';
import { OnEvents, OnRequest, type NatsRequestContext } from '@mesh/runtime';
import { ContainerManagerEngine } from './container-manager.engine';

/**
 * Thin event handlers; each node has its own durable consumers (consumerPrefix in main.ts) that
 * start at 'new': an old dispatch, decision or suspension is no command for a node that starts now.
 * Every handler is idempotent (the engine checks its memory and the execution stream first).
 */
@Controller()
export class ContainerManagerController {
  constructor(private readonly engine: ContainerManagerEngine) {}

  @OnEvents('task', { deliver: 'new', maxAckPending: 16 })
  async onTask(event: RecordedEvent): Promise<void> {
    if (isEvent(event, TaskDispatched)) await this.engine.dispatch(event.data);
    else if (isEvent(event, TaskCancelled)) await this.engine.cancel(event.data);
    else if (isEvent(event, TaskRequeued) || isEvent(event, TaskFailed)) await this.engine.superseded(event.data, event.type);
  }

  @OnEvents('scaling', { deliver: 'new' })
  async onScaling(event: RecordedEvent): Promise<void> {
    if (isEvent(event, ScalingDecided)) await this.engine.resize(event.data);
  }

  @OnEvents('standing', { deliver: 'new' })
  async onStanding(event: RecordedEvent): Promise<void> {
    if (isEvent(event, StandingChanged)) await this.engine.standing(event.data);
  }

  /** Drain requests of this node (whichever container-manager answered the operator wrote them). */
  @OnEvents('node', { deliver: 'new' })
  onNode(event: RecordedEvent): void {
    this.engine.drain.observe(event);
  }

  /** Any node answers (queue group), for any node: it writes on the target's stream. Operator only (NATS refuses tenants; checked again here). */
  @OnRequest(drainNodeRequest)
  drainNode(@Payload() body: RequestData<typeof drainNodeRequest>, @Ctx() ctx: NatsRequestContext) {
    assertOperator(ctx.caller, 'drain', `node ${body.nodeId}`);
    return this.engine.drain.request(body.nodeId);
  }
}
