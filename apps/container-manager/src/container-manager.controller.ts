import { Controller } from '@nestjs/common';
import type { RecordedEvent } from '@mesh/contracts';
import type { EventData, ScalingDecided, StandingChanged, TaskCancelled, TaskDispatched, TaskRequeued } from '@mesh/contracts';
import { OnEvents } from '@mesh/runtime';
import { ContainerAgent } from './agent/container-agent';

/**
 * Thin event handlers; each node has its own durable consumers (consumerPrefix in main.ts) that
 * start at 'new': an old dispatch, decision or suspension is no command for a node that starts now.
 * Every handler is idempotent (the agent checks its memory and the execution stream first).
 */
@Controller()
export class ContainerManagerController {
  constructor(private readonly agent: ContainerAgent) {}

  @OnEvents('task', { deliver: 'new', maxAckPending: 16 })
  async onTask(event: RecordedEvent): Promise<void> {
    if (event.type === 'TaskDispatched') await this.agent.dispatch(event.data as EventData<typeof TaskDispatched>);
    else if (event.type === 'TaskCancelled') await this.agent.cancel(event.data as EventData<typeof TaskCancelled>);
    else if (event.type === 'TaskRequeued' || event.type === 'TaskFailed')
      await this.agent.superseded(event.data as EventData<typeof TaskRequeued>, event.type);
  }

  @OnEvents('scaling', { deliver: 'new' })
  async onScaling(event: RecordedEvent): Promise<void> {
    if (event.type === 'ScalingDecided') await this.agent.resize(event.data as EventData<typeof ScalingDecided>);
  }

  @OnEvents('standing', { deliver: 'new' })
  async onStanding(event: RecordedEvent): Promise<void> {
    if (event.type === 'StandingChanged') await this.agent.standing(event.data as EventData<typeof StandingChanged>);
  }
}
