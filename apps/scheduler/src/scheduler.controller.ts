import { Controller } from '@nestjs/common';
import { Ctx, Payload } from '@nestjs/microservices';
import {
  assertOperator,
  cancelTaskRequest,
  executionEvents,
  isEventOf,
  deployFunctionRequest,
  functionRequest,
  functionsRequest,
  nodesRequest,
  poolsRequest,
  storageRequest,
  submitTaskRequest,
  taskOutputRequest,
  taskRequest,
  tasksRequest,
  type RecordedEvent,
  type RequestData,
} from '@mesh/contracts';
import { OnEvents, OnRequest, type NatsRequestContext } from '@mesh/runtime';
import { SchedulerEngine } from './scheduler.engine';
import { StorageGuard } from './storage.guard';
import { TaskHandler } from './task.handler';

/**
 * Thin adapters: commands and queries over NATS request/reply, and the durable consumer of
 * execution results (at least once; idempotent through the task decider), narrowed to their
 * typed events here. Logic is in the engine, the handlers and the pure domain. Every request passes
 * on its caller (`ctx.caller`, from the subject it arrived on): what a tenant may do is decided in
 * domain/access.ts; the operator-only queries check it here too, behind the NATS permissions.
 * (With `@Ctx()` on a parameter, Nest fills only decorated parameters: the body needs `@Payload()`.)
 */
@Controller()
export class SchedulerController {
  constructor(
    private readonly engine: SchedulerEngine,
    private readonly taskHandler: TaskHandler,
    private readonly storage: StorageGuard,
  ) {}

  @OnEvents('execution')
  async onExecution(event: RecordedEvent): Promise<void> {
    if (isEventOf(event, executionEvents)) await this.engine.onExecutionEvent(event);
  }

  // New work is refused (storage_full, nothing written) while the event store is nearly full.
  @OnRequest(deployFunctionRequest)
  async deployFunction(@Payload() body: RequestData<typeof deployFunctionRequest>, @Ctx() ctx: NatsRequestContext) {
    await this.storage.check();
    return this.engine.deployFunction(body, ctx.caller);
  }

  @OnRequest(submitTaskRequest)
  async submitTask(@Payload() body: RequestData<typeof submitTaskRequest>, @Ctx() ctx: NatsRequestContext) {
    await this.storage.check();
    return this.engine.submitTask(body, ctx.caller);
  }

  @OnRequest(cancelTaskRequest)
  cancelTask(@Payload() body: RequestData<typeof cancelTaskRequest>, @Ctx() ctx: NatsRequestContext) {
    return this.engine.cancelTask(body, ctx.caller);
  }

  @OnRequest(taskRequest)
  task(@Payload() body: RequestData<typeof taskRequest>, @Ctx() ctx: NatsRequestContext) {
    return this.engine.taskFor(ctx.caller, body.taskId);
  }

  // Tenants read their outputs here (they have no JetStream access): owner-checked like `task`.
  @OnRequest(taskOutputRequest)
  taskOutput(@Payload() body: RequestData<typeof taskOutputRequest>, @Ctx() ctx: NatsRequestContext) {
    return this.engine.taskOutputFor(ctx.caller, body);
  }

  @OnRequest(tasksRequest)
  tasks(@Payload() body: RequestData<typeof tasksRequest>, @Ctx() ctx: NatsRequestContext) {
    return this.engine.tasks(body, ctx.caller);
  }

  @OnRequest(functionsRequest)
  functions(@Payload() _body: RequestData<typeof functionsRequest>, @Ctx() ctx: NatsRequestContext) {
    return { functions: this.engine.functionsFor(ctx.caller) };
  }

  @OnRequest(functionRequest)
  function(@Payload() body: RequestData<typeof functionRequest>, @Ctx() ctx: NatsRequestContext) {
    return this.engine.functionFor(ctx.caller, body.functionId);
  }

  @OnRequest(poolsRequest)
  pools(@Payload() _body: RequestData<typeof poolsRequest>, @Ctx() ctx: NatsRequestContext) {
    assertOperator(ctx.caller, 'read', 'the pending pools');
    return this.engine.pools();
  }

  @OnRequest(storageRequest)
  storageStatus(@Payload() _body: RequestData<typeof storageRequest>, @Ctx() ctx: NatsRequestContext) {
    assertOperator(ctx.caller, 'read', 'the storage status');
    return this.storage.status();
  }

  @OnRequest(nodesRequest)
  nodes(@Payload() _body: RequestData<typeof nodesRequest>, @Ctx() ctx: NatsRequestContext) {
    assertOperator(ctx.caller, 'read', 'the nodes');
    return this.engine.nodes();
  }
}
