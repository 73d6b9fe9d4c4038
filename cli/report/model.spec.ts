import { recordedEventBuilder } from '@mesh/testing/recorded';
import { renderReport } from './html';
import { workSeconds } from '../demo/scenarios';
import { buildReportModel } from './model';
import { ticks } from './svg';

const recorded = recordedEventBuilder();
const ev = (type: string, stream: string, atMs: number, data: Record<string, unknown>) => recorded(type, stream, data, atMs);

describe('report model (folded from events)', () => {
  const t0 = Date.parse('2026-11-23T10:00:00Z');
  const c = { containerId: 'c1', nodeId: 'n1', walletId: 'w1', functionId: 'f1' };
  const events = [
    ev('WalletOpened', 'wallet-w1', t0, { walletId: 'w1', kind: 'user', currency: 'GRC', balanceAfter: '0', maxDebt: '0.5' }),
    ev('FundsDeposited', 'wallet-w1', t0 + 1000, { walletId: 'w1', currency: 'GRC', balanceAfter: '1', amount: '1' }),
    ev('TaskSubmitted', 'task-t1', t0 + 1100, { taskId: 't1', walletId: 'w1' }),
    ev('TaskDispatched', 'task-t1', t0 + 1200, { taskId: 't1', walletId: 'w1' }),
    ev('ContainerStarted', 'container-c1', t0 + 1300, { ...c, cpuMillis: 1000, cpuMaxMillis: 4000, startedAtMs: t0 + 1300 }),
    ev('ResourceSampled', 'usage-c1', t0 + 2300, { ...c, windowStartMs: t0 + 1300, windowEndMs: t0 + 2300, cpuNanos: 900_000_000 }),
    ev('ContainerResized', 'container-c1', t0 + 2400, { ...c, toCpuMillis: 2000, appliedAtMs: t0 + 2400 }),
    ev('UsageDebited', 'wallet-w1', t0 + 2500, { walletId: 'w1', currency: 'GRC', balanceAfter: '-0.2', amount: '1.2' }),
    ev('StandingChanged', 'standing-w1', t0 + 2510, { walletId: 'w1', from: 'normal', to: 'overdrawn', changedAtMs: t0 + 2510 }),
    ev('TaskSucceeded', 'task-t1', t0 + 3000, { taskId: 't1', walletId: 'w1' }),
    ev('ContainerStopped', 'container-c1', t0 + 9000, { ...c, reason: 'idle', stoppedAtMs: t0 + 9000 }),
  ];

  it('derives CPU used/allocated, balances with markers, and task counts', () => {
    const model = buildReportModel(events);
    expect(model.containers[0].usedMillis).toEqual([{ t: t0 + 2300, v: 900 }]);
    expect(model.containers[0].allocatedMillis.map((p) => p.v)).toEqual([1000, 2000, 0]);
    expect(model.wallets[0].balance.map((p) => p.v)).toEqual([0, 1, -0.2]);
    expect(model.wallets[0].markers).toEqual([{ t: t0 + 2510, label: 'overdrawn', kind: 'throttle' }]);
    expect(model.tasks.pending.map((p) => p.v)).toEqual([1, 0, 0]);
    expect(model.tasks.running.map((p) => p.v)).toEqual([0, 1, 0]);
    expect(model.outcomes).toEqual({ TaskSucceeded: 1 });
  });

  it('draws wallets first met mid-log without inventing a max-debt line', () => {
    const model = buildReportModel(events.slice(7));
    expect(model.wallets[0]).toMatchObject({ walletId: 'w1', maxDebt: Number.NaN });
    expect(renderReport(model)).not.toContain('max debt');
  });

  it('renders one SVG chart per wallet and container plus the task chart', () => {
    const html = renderReport(buildReportModel(events), 'demo <1>');
    expect(html.match(/<svg /g)).toHaveLength(3);
    expect(html).toContain('max debt -0.5');
    expect(html).toContain('overdrawn');
    expect(html).toContain('demo &lt;1&gt;');
  });

  it('picks round tick values', () => {
    expect(ticks(0, 4000)).toEqual([0, 1000, 2000, 3000, 4000]);
    expect(ticks(-0.5, 4.2)).toEqual([0, 1, 2, 3, 4]);
  });
});

describe('demo stress tasks', () => {
  it('do the reference core-seconds on a node with fewer cores than they ask', () => {
    expect(workSeconds([3, 1000], 2)).toBe(1500);
    expect(workSeconds([2, 100], 2)).toBe(100);
    expect(workSeconds([1, 150], 2)).toBe(150);
    expect(workSeconds([3, 250], 4)).toBe(250);
  });
});
