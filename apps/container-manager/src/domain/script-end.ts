/**
 * Who ended a script: the script itself (its exit code, or the kernel's OOM killer enforcing ITS
 * memory limit) or the platform (the Docker engine stopped or restarted, the container vanished,
 * the engine no longer answers). A platform kill looks like a script killed by SIGKILL (exit 137)
 * or SIGTERM (143) but must never be billed to the user as a failed task: it is retried instead.
 *
 * The evidence is the container's state once the run ended. The container's main process never
 * exits on its own (after the first run it is the idle `sleep`; during a cold run it is the runner,
 * which outlives the script to report its exit code), so a script that ended by itself leaves its
 * container running. A container that is no longer running, is gone, or whose engine does not
 * answer was killed from outside the script: the engine's shutdown or restart (without
 * live-restore it kills every container), a crash of the engine, or someone removing it.
 */

/** The container after the run, from `docker inspect` (engine-down: the engine did not answer). */
export type ContainerAfterRun = 'running' | 'stopped' | 'missing' | 'engine-down';

export interface ScriptEnd {
  /** The script's exit code; undefined when the run ended without one (the stream broke, the end marker never came). */
  exitCode: number | undefined;
  /** The container is still running, stopped, gone, or unknown; only looked at when the exit code is not 0. */
  container: ContainerAfterRun;
  /** Evidence of the kernel's OOM killer in the container's cgroup during the run (its counter, or Docker's `OOMKilled`). */
  oomKilled: boolean;
}

export type ScriptVerdict =
  | { by: 'script'; outcome: 'succeeded' }
  | { by: 'script'; outcome: 'failed'; reason: 'exit-code' | 'oom'; exitCode: number }
  | { by: 'platform'; detail: string };

const CONTAINER_DETAIL: Record<Exclude<ContainerAfterRun, 'running'>, string> = {
  stopped: 'the container was stopped from outside the script (Docker engine stopped or restarted)',
  missing: 'the container vanished while the script ran',
  'engine-down': 'the Docker engine stopped answering while the script ran',
};

export function classifyScriptEnd(end: ScriptEnd): ScriptVerdict {
  if (end.exitCode === undefined) {
    const detail = end.container === 'running' ? 'the run ended without reporting an exit code' : CONTAINER_DETAIL[end.container];
    return { by: 'platform', detail };
  }
  if (end.exitCode === 0) return { by: 'script', outcome: 'succeeded' };
  // An OOM kill inside the container's own memory limit is the script's doing, even when the kernel picked the runner and the container went down with it.
  if (end.oomKilled) return { by: 'script', outcome: 'failed', reason: 'oom', exitCode: end.exitCode };
  if (end.container !== 'running') return { by: 'platform', detail: `${CONTAINER_DETAIL[end.container]}; exit status ${end.exitCode} is not the script's own` };
  return { by: 'script', outcome: 'failed', reason: 'exit-code', exitCode: end.exitCode };
}
