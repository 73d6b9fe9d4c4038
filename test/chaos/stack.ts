import { setTimeout as sleep } from 'node:timers/promises';
import { messageOf } from '@mesh/common';
import type { ServiceName } from '@mesh/contracts';
import { ServiceProcess } from '@mesh/testing';
import { SecondDockerd } from '../integration/faults/second-dockerd';
import { E2EStack } from '../e2e/stack';

/** A service process that ended without being told to (e.g. the container-manager's fatal exit), and was started again. */
export interface UnplannedExit {
  service: ServiceName;
  code: number | null;
  signal: NodeJS.Signals | null;
  atMs: number;
  /** The last lines it printed: why it exited. */
  logTail: string;
  restartError?: string;
}

export const TASK_IMAGE = 'mesh/task-base:latest';

/**
 * The end-to-end stack (a real nats-server, the five services as processes) whose worker node runs
 * its containers on a PRIVATE dockerd: the soak restarts that engine, and the machine's shared one
 * runs other people's containers. Faster sampling and idle stop than the defaults, so a short soak
 * settles (every container stopped) within minutes.
 */
export class ChaosStack extends E2EStack {
  engine!: SecondDockerd;
  readonly unplannedExits: UnplannedExit[] = [];
  /** Services being restarted on purpose: the supervisor leaves them alone. */
  private readonly restarting = new Set<ServiceName>();
  private supervising?: AbortController;
  private supervisor?: Promise<void>;

  constructor(
    readonly sampleIntervalMs = 500,
    readonly idleTimeoutMs = 5000,
  ) {
    super(1);
  }

  override get env(): Record<string, string> {
    return {
      ...super.env,
      SAMPLE_INTERVAL_MS: String(this.sampleIntervalMs),
      IDLE_TIMEOUT_MS: String(this.idleTimeoutMs),
      DOCKER_SOCKET: this.engine.socket,
    };
  }

  override async start(): Promise<void> {
    this.engine = await SecondDockerd.start();
    this.engine.loadImage(TASK_IMAGE);
    await super.start();
  }

  override async kill(service: ServiceName): Promise<void> {
    this.restarting.add(service);
    try {
      await super.kill(service);
    } finally {
      this.restarting.delete(service);
    }
  }

  /**
   * Plays systemd's `Restart=always`: a service that exits on its own (the container-manager's
   * fatal path exits by design, and the restart reconciles) is started again and the exit recorded,
   * so the soak goes on and its summary says what exited and why.
   */
  supervise(log: (line: string) => void): void {
    const stop = (this.supervising = new AbortController());
    this.supervisor = (async () => {
      while (!stop.signal.aborted) {
        for (const [service, p] of this.services) {
          if (this.restarting.has(service) || (p.child.exitCode === null && p.child.signalCode === null)) continue;
          const exit: UnplannedExit = { service, code: p.child.exitCode, signal: p.child.signalCode, atMs: Date.now(), logTail: p.logs.slice(-1500) };
          this.unplannedExits.push(exit);
          log(`${service} exited on its own (code ${exit.code}, signal ${exit.signal}); starting it again`);
          this.restarting.add(service);
          try {
            const next = ServiceProcess.start(service, this.env);
            this.services.set(service, next);
            await next.healthy(this.server.url, 120_000);
          } catch (err) {
            exit.restartError = messageOf(err);
          } finally {
            this.restarting.delete(service);
          }
        }
        await sleep(500, undefined, { signal: stop.signal }).catch(() => undefined);
      }
    })();
  }

  /** Stops the private engine as `systemctl stop docker` does (SIGTERM; SIGKILL would leave its containerd behind) and starts it again. */
  async restartEngine(): Promise<void> {
    await this.engine.stop('SIGTERM');
    await this.engine.spawn();
  }

  override async stop(): Promise<void> {
    this.supervising?.abort();
    await this.supervisor;
    try {
      await super.stop();
    } finally {
      await this.engine?.dispose();
    }
  }

  override logs(): string {
    return `${super.logs()}\n----- private dockerd\n${this.engine?.logs.slice(-2000) ?? ''}`;
  }
}
