import {
  ContainerResized,
  ContainerStarted,
  ContainerStopped,
  ResourceSampled,
  ScalingDecided,
  StandingChanged,
  WalletOpened,
  isEvent,
  isEventOf,
  taskEvents,
  walletEvents,
  type RecordedEvent,
} from '@mesh/contracts';

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
const toNumber = (amount: string) => Number(amount);

export function buildReportModel(events: Iterable<RecordedEvent>): ReportModel {
  const containers = new Map<string, ContainerSeries>();
  const wallets = new Map<string, WalletSeries>();
  const taskState = new Map<string, 'pending' | 'running' | 'done'>();
  const tasks: ReportModel['tasks'] = { pending: [], running: [] };
  const outcomes: Record<string, number> = {};
  let pending = 0;
  let running = 0;
  let from = Infinity;
  let to = 0;
  let count = 0;

  /** The series of the container an event names (created at its first event). */
  const container = (d: { containerId: string; walletId: string; functionId: string; cpuMaxMillis?: number }) => {
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
    count++;
    from = Math.min(from, t);
    to = Math.max(to, t);
    if (isEvent(e, ContainerStarted)) {
      const c = container(e.data);
      c.maxMillis = e.data.cpuMaxMillis;
      c.allocatedMillis.push({ t: e.data.startedAtMs ?? t, v: e.data.cpuMillis });
    } else if (isEvent(e, ContainerResized)) {
      container(e.data).allocatedMillis.push({ t: e.data.appliedAtMs ?? t, v: e.data.toCpuMillis });
    } else if (isEvent(e, ContainerStopped)) {
      container(e.data).allocatedMillis.push({ t: e.data.stoppedAtMs ?? t, v: 0 });
    } else if (isEvent(e, ScalingDecided)) {
      if (e.data.throttleCapMillis) container(e.data).throttleCapMillis = e.data.throttleCapMillis;
    } else if (isEvent(e, ResourceSampled)) {
      const d = e.data;
      const windowMs = Math.max(1, d.windowEndMs - d.windowStartMs);
      container(d).usedMillis.push({ t: d.windowEndMs, v: d.cpuNanos / windowMs / 1000 });
    } else if (isEvent(e, WalletOpened)) {
      const d = e.data;
      if (d.kind === 'user')
        wallets.set(d.walletId, {
          walletId: d.walletId,
          currency: d.currency,
          balance: [{ t, v: toNumber(d.balanceAfter) }],
          maxDebt: toNumber(d.maxDebt),
          markers: [],
        });
    } else if (isEventOf(e, walletEvents)) {
      // Every other wallet event but the provider's credits moves a user wallet's balance. A report
      // that starts mid-log meets wallets opened before it: draw them without the max-debt line until
      // a policy event says it (UsageDebited only ever hits user wallets).
      if (e.type === 'UsageCredited') continue;
      const d = e.data;
      if (!wallets.has(d.walletId) && e.type === 'UsageDebited') {
        wallets.set(d.walletId, { walletId: d.walletId, currency: d.currency, balance: [], maxDebt: Number.NaN, markers: [] });
      }
      const w = wallets.get(d.walletId);
      if (!w) continue;
      w.balance.push({ t, v: toNumber(d.balanceAfter) });
      if (e.type === 'WalletPolicyChanged') w.maxDebt = toNumber(e.data.maxDebt);
    } else if (isEvent(e, StandingChanged)) {
      const d = e.data;
      const w = wallets.get(d.walletId);
      if (!w || d.from === null) continue;
      const kind = d.to === 'overdrawn' ? 'throttle' : d.to === 'suspended' ? 'suspend' : 'recover';
      w.markers.push({ t: d.changedAtMs ?? t, label: d.to, kind });
    } else if (isEventOf(e, taskEvents)) {
      switch (e.type) {
        case 'TaskSubmitted':
        case 'TaskRequeued':
          moveTask(e.data.taskId, 'pending', t);
          break;
        case 'TaskDispatched':
          moveTask(e.data.taskId, 'running', t);
          break;
        case 'TaskSucceeded':
        case 'TaskFailed':
        case 'TaskCancelled':
          outcomes[e.type] = (outcomes[e.type] ?? 0) + 1;
          moveTask(e.data.taskId, 'done', t);
          break;
      }
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
