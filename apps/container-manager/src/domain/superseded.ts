import { isEvent, TaskCancelled, TaskDispatched, TaskFailed, TaskRequeued, TaskSucceeded } from '@mesh/contracts';

/**
 * Whether the task's own stream says this attempt must not run: the task ended (succeeded, failed,
 * cancelled), or this attempt was requeued or a later one dispatched. It happens to a node that was
 * declared lost and comes back with dispatches still queued for it: running them would bill the
 * wallet for work whose result the scheduler ignores.
 */
export function isSuperseded(task: Array<{ type: string; data: unknown }>, attempt: number): boolean {
  return task.some(
    (e) =>
      isEvent(e, TaskSucceeded) ||
      isEvent(e, TaskFailed) ||
      isEvent(e, TaskCancelled) ||
      (isEvent(e, TaskRequeued) && e.data.attempt >= attempt) ||
      (isEvent(e, TaskDispatched) && e.data.attempt > attempt),
  );
}
