import type { RecordedEvent } from '@mesh/contracts';

/** Everything the report draws, folded from the event log in one pass. */
export interface Point {
  t: number; // epoch ms
  v: number;
}

export interface ContainerSeries {
  containerId: string;
  walletId: string;
  functionId: string;
  usedMillis: Point[];
  allocatedMillis: Point[];
  maxMillis: number;
  throttleCapMillis?: number;
}

export interface WalletSeries {
  walletId: string;
  currency: string;
  /** Balance in the major unit (a float is fine here: it only positions pixels, never money math). */
  balance: Point[];
  maxDebt: number;
  markers: { t: number; label: string; kind: 'throttle' | 'suspend' | 'recover' }[];
}

export interface ReportModel {
  from: number;
  to: number;
  events: number;
  containers: ContainerSeries[];
  wallets: WalletSeries[];
  tasks: { pending: Point[]; running: Point[] };
  outcomes: Record<string, number>;
}

const at = (e: RecordedEvent) => Date.parse(e.occurredAt);
/** Decimal string -> number for drawing only. */
const toNumber = (amount: unknown) => Number(amount);

export function buildReportModel(events: Iterable<RecordedEvent>): ReportModel {
  const containers = new Map<string, ContainerSeries>();
  const wallets = new Map<string, WalletSeries>();
  const taskState = new Map<string, 'pending' | 'running' | 'done'>();
  const tasks = { pending: [] as Point[], running: [] as Point[] };
  const outcomes: Record<string, number> = {};
  let pending = 0;
  let running = 0;
  let from = Infinity;
  let to = 0;
  let count = 0;

  const container = (d: Record<string, any>) => {
    let c = containers.get(d.containerId);
    if (!c) {
      c = { containerId: d.containerId, walletId: d.walletId, functionId: d.functionId, usedMillis: [], allocatedMillis: [], maxMillis: d.cpuMaxMillis ?? 0 };
      containers.set(d.containerId, c);
    }
    return c;
  };
  const moveTask = (taskId: string, next: 'pending' | 'running' | 'done', t: number) => {
    const prev = taskState.get(taskId);
    if (prev === next) return;
    if (prev === 'pending') pending--;
    if (prev === 'running') running--;
    if (next === 'pending') pending++;
    if (next === 'running') running++;
    taskState.set(taskId, next);
    tasks.pending.push({ t, v: pending });
    tasks.running.push({ t, v: running });
  };

  for (const e of events) {
    const t = at(e);
    const d = e.data as Record<string, any>;
    count++;
    from = Math.min(from, t);
    to = Math.max(to, t);
    switch (e.type) {
      case 'ContainerStarted': {
        const c = container(d);
        c.maxMillis = d.cpuMaxMillis;
        c.allocatedMillis.push({ t: d.startedAtMs ?? t, v: d.cpuMillis });
        break;
      }
      case 'ContainerResized':
        container(d).allocatedMillis.push({ t: d.appliedAtMs ?? t, v: d.toCpuMillis });
        break;
      case 'ContainerStopped':
        container(d).allocatedMillis.push({ t: d.stoppedAtMs ?? t, v: 0 });
        break;
      case 'ScalingDecided':
        if (d.throttleCapMillis) container(d).throttleCapMillis = d.throttleCapMillis;
        break;
      case 'ResourceSampled': {
        const windowMs = Math.max(1, d.windowEndMs - d.windowStartMs);
        container(d).usedMillis.push({ t: d.windowEndMs, v: d.cpuNanos / windowMs / 1000 });
        break;
      }
      case 'WalletOpened':
        if (d.kind === 'user')
          wallets.set(d.walletId, {
            walletId: d.walletId,
            currency: d.currency,
            balance: [{ t, v: toNumber(d.balanceAfter) }],
            maxDebt: toNumber(d.maxDebt),
            markers: [],
          });
        break;
      case 'WalletPolicyChanged':
      case 'FundsDeposited':
      case 'FundsWithdrawn':
      case 'BalanceAdjusted':
      case 'UsageDebited': {
        // A report that starts mid-log meets wallets opened before it: draw them without the
        // max-debt line until a policy event says it (UsageDebited only ever hits user wallets).
        if (!wallets.has(d.walletId) && e.type === 'UsageDebited') {
          wallets.set(d.walletId, { walletId: d.walletId, currency: d.currency, balance: [], maxDebt: Number.NaN, markers: [] });
        }
        const w = wallets.get(d.walletId);
        if (!w) break;
        w.balance.push({ t, v: toNumber(d.balanceAfter) });
        if (e.type === 'WalletPolicyChanged') w.maxDebt = toNumber(d.maxDebt);
        break;
      }
      case 'StandingChanged': {
        const w = wallets.get(d.walletId);
        if (!w || d.from === null) break;
        const kind = d.to === 'overdrawn' ? 'throttle' : d.to === 'suspended' ? 'suspend' : 'recover';
        w.markers.push({ t: d.changedAtMs ?? t, label: d.to, kind });
        break;
      }
      case 'TaskSubmitted':
      case 'TaskRequeued':
        moveTask(d.taskId, 'pending', t);
        break;
      case 'TaskDispatched':
        moveTask(d.taskId, 'running', t);
        break;
      case 'TaskSucceeded':
      case 'TaskFailed':
      case 'TaskCancelled':
        outcomes[e.type] = (outcomes[e.type] ?? 0) + 1;
        moveTask(d.taskId, 'done', t);
        break;
    }
  }
  return {
    from: Number.isFinite(from) ? from : 0,
    to,
    events: count,
    containers: [...containers.values()].filter((c) => c.usedMillis.length || c.allocatedMillis.length),
    wallets: [...wallets.values()],
    tasks,
    outcomes,
  };
}
