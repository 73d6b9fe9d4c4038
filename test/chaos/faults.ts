import { setTimeout as sleep } from 'node:timers/promises';
import { messageOf } from '@mesh/common';
import { SERVICES, type ServiceName } from '@mesh/contracts';
import { NatsPause } from '../integration/faults/nats-pause';
import type { ChaosStack } from './stack';

export const FAULT_KINDS = ['service-kill', 'nats-pause', 'nats-restart', 'engine-restart'] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

export interface InjectedFault {
  kind: FaultKind;
  /** What exactly: the service killed, the pause length. */
  detail: string;
  atMs: number;
  tookMs: number;
  error?: string;
}

/** A small seeded generator (mulberry32), so a soak's fault sequence can be replayed with its seed. */
export class Rng {
  private state: number;
  constructor(readonly seed: number) {
    this.state = seed >>> 0;
  }
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(0, items.length - 1)];
  }
}

export interface FaultDriverOptions {
  /** The window in which faults are injected; none starts after it. */
  durationMs: number;
  /** Bound on the number of faults, whatever the window. */
  faultsMax: number;
  /** Quiet time between two faults (uniform in [min, max]), so the stack does some work between them. */
  gapMinMs: number;
  gapMaxMs: number;
  rng: Rng;
  log: (line: string) => void;
  signal?: AbortSignal;
}

/**
 * Injects real faults into a ChaosStack, one at a time, bounded in count and time: SIGKILL of a
 * random service process (then started again with the same configuration), nats-server frozen with
 * SIGSTOP for 2-5 s then SIGCONT, nats-server restarted (same port and store), and the worker
 * node's PRIVATE dockerd restarted (SIGTERM, start again). Every kind is injected at least once
 * when the window allows: the first four faults are one of each kind in random order.
 */
export class FaultDriver {
  readonly faults: InjectedFault[] = [];

  constructor(
    private readonly stack: ChaosStack,
    private readonly options: FaultDriverOptions,
  ) {}

  async run(): Promise<InjectedFault[]> {
    const { rng, durationMs, faultsMax, log, signal } = this.options;
    const started = Date.now();
    const firstRound = [...FAULT_KINDS].sort(() => rng.next() - 0.5);
    while (this.faults.length < faultsMax && !signal?.aborted) {
      const gapMs = rng.int(this.options.gapMinMs, this.options.gapMaxMs);
      if (Date.now() - started + gapMs > durationMs) break;
      await sleep(gapMs, undefined, { signal }).catch(() => undefined);
      if (signal?.aborted) break;
      const kind = firstRound[this.faults.length] ?? rng.pick(FAULT_KINDS);
      const fault = await this.inject(kind);
      this.faults.push(fault);
      log(`fault ${this.faults.length}: ${fault.kind} ${fault.detail} (${fault.tookMs} ms)${fault.error ? ` FAILED: ${fault.error}` : ''}`);
    }
    return this.faults;
  }

  private async inject(kind: FaultKind): Promise<InjectedFault> {
    const atMs = Date.now();
    let detail = '';
    try {
      switch (kind) {
        case 'service-kill': {
          const service: ServiceName = this.options.rng.pick(SERVICES);
          detail = service;
          await this.stack.kill(service); // SIGKILL, start again, wait until it answers health
          break;
        }
        case 'nats-pause': {
          const pauseMs = this.options.rng.int(2000, 5000);
          detail = `${pauseMs} ms`;
          const nats = NatsPause.of(this.stack.server); // the pid changes with every restart
          nats.pause();
          try {
            await sleep(pauseMs);
          } finally {
            nats.resume();
          }
          break;
        }
        case 'nats-restart':
          detail = `port ${this.stack.server.port}`;
          await this.stack.server.restart();
          break;
        case 'engine-restart':
          detail = 'private dockerd';
          await this.stack.restartEngine();
          break;
      }
      return { kind, detail, atMs, tookMs: Date.now() - atMs };
    } catch (err) {
      return { kind, detail, atMs, tookMs: Date.now() - atMs, error: messageOf(err) };
    }
  }

  /** Faults injected per kind (every kind listed, 0 when none). */
  countByKind(): Record<FaultKind, number> {
    const counts: Record<FaultKind, number> = { 'service-kill': 0, 'nats-pause': 0, 'nats-restart': 0, 'engine-restart': 0 };
    for (const f of this.faults) counts[f.kind]++;
    return counts;
  }
}
