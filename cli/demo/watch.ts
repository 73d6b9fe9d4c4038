import { ContainerStopped, ExecutionAborted, StandingChanged, isEvent, isEventOf, taskEvents, walletEvents, type RecordedEvent } from '@mesh/contracts';
import type { EventStore, Subscription } from '@mesh/eventstore';

/** Whether an event concerns the wallet: its `walletId`, or the user wallet a provider credit names (`userWalletId`). */
function concerns(e: RecordedEvent, walletId: string): boolean {
  if (typeof e.data !== 'object' || e.data === null) return false;
  const data = new Map(Object.entries(e.data));
  return data.get('walletId') === walletId || data.get('userWalletId') === walletId;
}

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

  /** Folds one event of the log (events of other wallets are ignored). */
  apply(e: RecordedEvent): void {
    if (!concerns(e, this.walletId)) return;
    const task = (taskId: string, state: TaskView['state']) => {
      const t = this.tasks.get(taskId) ?? { taskId, state, requeues: 0 };
      t.state = state;
      this.tasks.set(taskId, t);
      return t;
    };
    if (isEventOf(e, taskEvents)) {
      switch (e.type) {
        case 'TaskSubmitted':
          task(e.data.taskId, 'pending');
          break;
        case 'TaskDispatched':
        case 'TaskRunning':
          task(e.data.taskId, 'running');
          break;
        case 'TaskRequeued':
          task(e.data.taskId, 'pending').requeues++;
          break;
        case 'TaskSucceeded':
          task(e.data.taskId, 'succeeded');
          break;
        case 'TaskFailed':
          task(e.data.taskId, 'failed');
          break;
        case 'TaskCancelled':
          task(e.data.taskId, 'cancelled');
          break;
      }
    } else if (isEvent(e, ExecutionAborted)) {
      this.aborts.push(e.data.taskId);
    } else if (isEvent(e, StandingChanged)) {
      // The first standing of a wallet (from null) is its state at opening, not a change.
      if (e.data.from !== null) this.standings.push({ to: e.data.to, atMs: e.data.changedAtMs, balance: e.data.balance });
      else this.initialStanding = e.data.to;
    } else if (isEvent(e, ContainerStopped)) {
      this.containerStops.push({ reason: e.data.reason, atMs: e.data.stoppedAtMs });
    } else if (e.stream === `wallet-${this.walletId}` && isEventOf(e, walletEvents)) {
      this.balances.push({ atMs: Date.parse(e.occurredAt), balance: e.data.balanceAfter });
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
