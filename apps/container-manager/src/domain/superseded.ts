/**
 * Whether the task's own stream says this attempt must not run: the task ended (succeeded, failed,
 * cancelled), or this attempt was requeued or a later one dispatched. It happens to a node that was
 * declared lost and comes back with dispatches still queued for it: running them would bill the
 * wallet for work whose result the scheduler ignores.
 */
export function isSuperseded(task: Array<{ type: string; data: unknown }>, attempt: number): boolean {
  return task.some((e) => {
    if (e.type === 'TaskSucceeded' || e.type === 'TaskFailed' || e.type === 'TaskCancelled') return true;
    const eventAttempt = (e.data as { attempt?: number }).attempt ?? 0;
    return (e.type === 'TaskRequeued' && eventAttempt >= attempt) || (e.type === 'TaskDispatched' && eventAttempt > attempt);
  });
}
