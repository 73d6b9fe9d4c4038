import { recordedEventBuilder } from '@mesh/testing/recorded';
import { ScenarioWatch } from './watch';

const recorded = recordedEventBuilder();
const ev = (type: string, stream: string, data: Record<string, unknown>, atMs = 1_000) => recorded(type, stream, data, atMs);

describe('ScenarioWatch', () => {
  it('given the events of its wallet, then it follows tasks, standings, aborts, container stops and balances; other wallets are ignored', () => {
    const watch = new ScenarioWatch('w1', 0);
    const task = { functionId: 'stress', walletId: 'w1' };
    const events = [
      ev('StandingChanged', 'standing-w1', { walletId: 'w1', from: null, to: 'normal', balance: '1', changedAtMs: 10 }),
      ev('FundsDeposited', 'wallet-w1', { walletId: 'w1', amount: '1', balanceAfter: '1' }, 20),
      ev('TaskSubmitted', 'task-t1', { ...task, taskId: 't1' }),
      ev('TaskSubmitted', 'task-t2', { ...task, taskId: 't2' }),
      ev('TaskDispatched', 'task-t1', { ...task, taskId: 't1' }),
      ev('TaskSucceeded', 'task-t1', { ...task, taskId: 't1' }),
      ev('TaskDispatched', 'task-t2', { ...task, taskId: 't2' }),
      ev('UsageDebited', 'wallet-w1', { walletId: 'w1', amount: '2', balanceAfter: '-1' }, 30),
      ev('StandingChanged', 'standing-w1', { walletId: 'w1', from: 'normal', to: 'suspended', balance: '-1', changedAtMs: 40 }),
      ev('ExecutionAborted', 'execution-x', { ...task, taskId: 't2', reason: 'suspended' }),
      ev('TaskRequeued', 'task-t2', { ...task, taskId: 't2', reason: 'aborted' }),
      ev('ContainerStopped', 'container-c1', { walletId: 'w1', containerId: 'c1', reason: 'suspended', stoppedAtMs: 50 }),
      ev('UsageCredited', 'wallet-provider', { walletId: 'provider', userWalletId: 'w1', amount: '2', balanceAfter: '2' }),
      ev('TaskSubmitted', 'task-t3', { functionId: 'stress', walletId: 'w2', taskId: 't3' }),
      ev('FundsDeposited', 'wallet-w2', { walletId: 'w2', amount: '5', balanceAfter: '5' }),
    ];
    for (const e of events) watch.apply(e);

    expect([...watch.tasks.values()]).toEqual([
      { taskId: 't1', state: 'succeeded', requeues: 0 },
      { taskId: 't2', state: 'pending', requeues: 1 },
    ]);
    expect(watch.standings).toEqual([{ to: 'suspended', atMs: 40, balance: '-1' }]);
    expect(watch.standing).toBe('suspended');
    expect(watch.aborts).toEqual(['t2']);
    expect(watch.containerStops).toEqual([{ reason: 'suspended', atMs: 50 }]);
    expect(watch.balances).toEqual([
      { atMs: 20, balance: '1' },
      { atMs: 30, balance: '-1' },
    ]);
    expect([watch.count('pending'), watch.count('succeeded')]).toEqual([1, 1]);
  });

  it('resolves a wait when an event makes the check hold', async () => {
    const watch = new ScenarioWatch('w1');
    const done = watch.until(() => watch.count('succeeded') === 1, 5_000, 'the task');
    watch.apply(ev('TaskSubmitted', 'task-t1', { functionId: 'f', walletId: 'w1', taskId: 't1' }));
    watch.apply(ev('TaskSucceeded', 'task-t1', { functionId: 'f', walletId: 'w1', taskId: 't1' }));
    await expect(done).resolves.toBeUndefined();
  });
});
