import { execFile } from 'node:child_process';
import { join } from 'node:path';

/** The `mesh` command's entry point in this repository. */
export const MESH_BIN = join(__dirname, '..', '..', 'bin', 'mesh.js');
/** Bound of one CLI run in a test: a command hanging longer has failed. */
const MESH_RUN_TIMEOUT_MS = 60_000;

/** How one `mesh` run ended: its exit code (null when killed), stdout and stderr. */
export interface MeshRun {
  code: number | null;
  out: string;
  err: string;
}

/**
 * Runs the `mesh` binary as a user does, in its own process with `env` as its whole environment.
 * `timeoutMs`: longer for commands that deploy (`mesh cluster up` may build images).
 * Asynchronous on purpose: services the CLI talks to may run in the test's process and must keep answering.
 */
export function runMesh(args: string[], env: NodeJS.ProcessEnv, timeoutMs = MESH_RUN_TIMEOUT_MS): Promise<MeshRun> {
  return new Promise((resolve) => {
    execFile(process.execPath, [MESH_BIN, ...args], { env, timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 }, (error, out, err) =>
      resolve({ code: error ? ((error as { code?: number }).code ?? null) : 0, out, err }),
    );
  });
}

/** `runMesh` from the sources (no build needed) against the nats-server at `natsUrl`. */
export function meshFromSource(natsUrl: string, ...args: string[]): Promise<MeshRun> {
  return runMesh(args, { ...process.env, NATS_URL: natsUrl, MESH_FROM_SOURCE: '1' });
}
