import type { RecordedEvent } from '@mesh/contracts';
import type { EventStore, Subscription } from '@mesh/eventstore';

export interface TaskView {
  taskId: string;
  state: 'pending' | 'running' | 'succeeded' | 'failed' | 'cancelled';
  requeues: number;
}

/**
 * Folds the live event log of one demo scenario (its wallet and tasks) so the runner can wait for
 * outcomes ("task 3 ended", "wallet suspended") and summarise them, from events only.
 */
export class ScenarioWatch {
  readonly tasks = new Map<string, TaskView>();
  readonly standings: { to: string; atMs: number; balance: string }[] = [];
  readonly balances: { atMs: number; balance: string }[] = [];
  readonly aborts: string[] = [];
  containerStops: { reason: string; atMs: number }[] = [];
  private subscription?: Subscription;
  private waiters: (() => void)[] = [];

  constructor(
    private readonly walletId: string,
    readonly startedAtMs = Date.now(),
  ) {}

  start(store: EventStore, after: bigint): void {
    this.subscription = store.subscribe({ after }, (e) => this.apply(e));
  }

  async stop(): Promise<void> {
    await this.subscription?.stop();
  }

  private apply(e: RecordedEvent): void {
    const d = e.data as Record<string, any>;
    if (d.walletId !== this.walletId && d.userWalletId !== this.walletId) return;
    const task = (state: TaskView['state']) => {
      const t = this.tasks.get(d.taskId) ?? { taskId: d.taskId, state, requeues: 0 };
      t.state = state;
      this.tasks.set(d.taskId, t);
      return t;
    };
    switch (e.type) {
      case 'TaskSubmitted':
        task('pending');
        break;
      case 'TaskDispatched':
      case 'TaskRunning':
        task('running');
        break;
      case 'TaskRequeued':
        task('pending').requeues++;
        break;
      case 'TaskSucceeded':
        task('succeeded');
        break;
      case 'TaskFailed':
        task('failed');
        break;
      case 'TaskCancelled':
        task('cancelled');
        break;
      case 'ExecutionAborted':
        this.aborts.push(d.taskId);
        break;
      case 'StandingChanged':
        // The first standing of a wallet (from null) is its state at opening, not a change.
        if (d.from !== null) this.standings.push({ to: d.to, atMs: d.changedAtMs, balance: d.balance });
        else this.initialStanding = d.to;
        break;
      case 'ContainerStopped':
        this.containerStops.push({ reason: d.reason, atMs: d.stoppedAtMs });
        break;
      default:
        if (e.stream === `wallet-${this.walletId}` && typeof d.balanceAfter === 'string')
          this.balances.push({ atMs: Date.parse(e.occurredAt), balance: d.balanceAfter });
    }
    for (const w of this.waiters.splice(0)) w();
  }

  private initialStanding?: string;

  get standing(): string | undefined {
    return this.standings[this.standings.length - 1]?.to ?? this.initialStanding;
  }

  count(state: TaskView['state']): number {
    return [...this.tasks.values()].filter((t) => t.state === state).length;
  }

  /** Resolves when `check` holds (re-checked on every event), rejects after `timeoutMs`. */
  async until(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!check()) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out after ${Math.round(timeoutMs / 1000)} s waiting for ${what}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 1000));
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }
}
