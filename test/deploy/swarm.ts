import { execFileSync } from 'node:child_process';
import { portFree } from '../../cli/commands/cluster';

/** Attempts at finding a run of free ports before giving up. */
const PORT_RUN_ATTEMPTS_MAX = 50;

/**
 * A port p with p..p+count-1 free (the stack publishes its three NATS servers on consecutive host
 * ports): random bases in 20000..39999, so parallel runs rarely pick the same.
 */
export async function freePortRun(count: number): Promise<number> {
  for (let attempt = 0; attempt < PORT_RUN_ATTEMPTS_MAX; attempt++) {
    const base = 20_000 + Math.floor(Math.random() * 20_000);
    const free = await Promise.all(Array.from({ length: count }, (_, i) => portFree(base + i)));
    if (free.every(Boolean)) return base;
  }
  throw new Error(`no run of ${count} free ports found in ${PORT_RUN_ATTEMPTS_MAX} attempts`);
}

export const docker = (...args: string[]): string => execFileSync('docker', args, { encoding: 'utf8' }).trim();
export const dockerLines = (...args: string[]): string[] =>
  docker(...args)
    .split('\n')
    .filter(Boolean);

/** The engine's swarm state: inactive, active, ... */
export const swarmState = () => docker('info', '--format', '{{.Swarm.LocalNodeState}}');
