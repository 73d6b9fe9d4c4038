import { readdirSync, readFileSync } from 'node:fs';
import type { NatsServerProcess } from '@mesh/testing';

/**
 * Freezes a test's nats-server with SIGSTOP and thaws it with SIGCONT: the TCP connections stay
 * open and nothing answers, as in a GC pause, a stalled VM or a NATS restart in progress.
 * NatsServerProcess does not expose its pid, so it is found from /proc by the port it listens on.
 */
export class NatsPause {
  private constructor(readonly pid: number) {}

  static of(server: NatsServerProcess): NatsPause {
    for (const entry of readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      let args: string[];
      try {
        args = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      } catch {
        continue; // the process ended while we looked
      }
      const portAt = args.indexOf('-p');
      if (args[0]?.endsWith('nats-server') && portAt > 0 && args[portAt + 1] === String(server.port)) return new NatsPause(Number(entry));
    }
    throw new Error(`no nats-server process listening on port ${server.port} found in /proc`);
  }

  pause(): void {
    process.kill(this.pid, 'SIGSTOP');
  }

  resume(): void {
    process.kill(this.pid, 'SIGCONT');
  }
}
