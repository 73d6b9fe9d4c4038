import { Controller } from '@nestjs/common';
import {
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
  taskRequest,
  tasksRequest,
  type RecordedEvent,
  type RequestData,
} from '@mesh/contracts';
import { OnEvents, OnRequest } from '@mesh/runtime';
import { SchedulerEngine } from './scheduler.engine';
import { StorageGuard } from './storage.guard';
import { TaskHandler } from './task.handler';

/**
 * Thin adapters: commands and queries over NATS request/reply, and the durable consumer of
 * execution results (at least once; idempotent through the task decider), narrowed to their
 * typed events here. Logic is in the engine, the handlers and the pure domain.
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
  async deployFunction(body: RequestData<typeof deployFunctionRequest>) {
    await this.storage.check();
    return this.engine.deployFunction(body);
  }

  @OnRequest(submitTaskRequest)
  async submitTask(body: RequestData<typeof submitTaskRequest>) {
    await this.storage.check();
    return this.engine.submitTask(body);
  }

  @OnRequest(cancelTaskRequest)
  cancelTask(body: RequestData<typeof cancelTaskRequest>) {
    return this.engine.cancelTask(body);
  }

  @OnRequest(taskRequest)
  task(body: RequestData<typeof taskRequest>) {
    return this.taskHandler.detail(body.taskId);
  }

  @OnRequest(tasksRequest)
  tasks(body: RequestData<typeof tasksRequest>) {
    return this.engine.tasks(body);
  }

  @OnRequest(functionsRequest)
  functions() {
    return { functions: [...this.engine.view.functions.values()].sort((a, b) => a.functionId.localeCompare(b.functionId)) };
  }

  @OnRequest(functionRequest)
  function(body: RequestData<typeof functionRequest>) {
    return this.engine.functionOf(body.functionId);
  }

  @OnRequest(poolsRequest)
  pools() {
    return this.engine.pools();
  }

  @OnRequest(storageRequest)
  storageStatus() {
    return this.storage.status();
  }

  @OnRequest(nodesRequest)
  nodes() {
    return this.engine.nodes();
  }
}
