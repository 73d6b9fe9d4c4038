import {
  ContainerStarted,
  ContainerStopped,
  eventOf,
  ExecutionFailed,
  FundsDeposited,
  GENESIS_HASH,
  isEvent,
  MessageQuarantined,
  ResourceSampled,
  TaskDispatched,
  TaskFailed,
  TaskRequeued,
  TaskSubmitted,
  TaskSucceeded,
  UsageCharged,
  UsageCredited,
  UsageDebited,
  WalletOpened,
  type EventData,
  type EventDefinition,
  type RecordedEvent,
} from '@mesh/contracts';
import { PoisonMessage } from '@mesh/eventstore';
import { checkEvents, type CheckName } from './checks';
import { expectedExit } from './workload';

/** A log built event by event: revisions per stream and positions in the whole log as the store gives them. */
class Log {
  readonly events: RecordedEvent[] = [];
  private readonly revisions = new Map<string, number>();
  add<D extends EventDefinition>(definition: D, stream: string, data: EventData<D>): this {
    const e = eventOf(definition, `e${this.events.length + 1}`, data);
    const revision = (this.revisions.get(stream) ?? -1) + 1;
    this.revisions.set(stream, revision);
    this.events.push({
      ...e,
      stream,
      occurredAt: '2026-11-30T00:00:00.000Z',
      schemaVersion: 1,
      correlationId: 'c',
      causationId: 'c',
      revision,
      position: BigInt(this.events.length + 1),
    });
    return this;
  }
}

const W = 'w1';
const P = 'provider';
const ref = { walletId: W, functionId: 'f1' };
const posting = (balanceAfter: string) => ({ currency: 'GRC', balanceAfter, prevHash: GENESIS_HASH });
const input = (code: number) => ({ inline: Buffer.from(`${code}-1`).toString('base64') });
const sample = (seq: number, cpuNanos: number, cpuNanosTotal: number) => ({
  sampleId: `c1-${seq}`,
  containerId: 'c1',
  nodeId: 'n1',
  ...ref,
  seq,
  taskId: 't1',
  windowStartMs: seq * 500,
  windowEndMs: seq * 500 + 500,
  cpuNanos,
  memoryBytesAvg: 0,
  memoryBytesMax: 0,
  cpuLimitMillis: 1000,
  memoryLimitBytes: 1024,
  final: false,
  cpuNanosTotal,
});
const charge = (seq: number, cpuNanos: number, amount: string) => ({
  chargeId: `ch-c1-${seq}`,
  containerId: 'c1',
  ...ref,
  nodeId: 'n1',
  taskId: 't1',
  sampleId: `c1-${seq}`,
  sampleSeq: seq,
  windowStartMs: 0,
  windowEndMs: 1,
  cpuNanos,
  memoryByteMs: '0',
  planId: 'p',
  planVersion: 1,
  currency: 'GRC',
  amount,
  remainder: '0/1',
  providerWalletId: P,
});
const credited = (seq: number, amount: string, balanceAfter: string) => ({
  ...posting(balanceAfter),
  walletId: P,
  amount,
  charges: [{ chargeId: `ch-c1-${seq}`, amount, userWalletId: W, containerId: 'c1', functionId: 'f1', taskId: 't1' }],
});
const debited = (seq: number, amount: string, balanceAfter: string) => ({
  ...posting(balanceAfter),
  walletId: W,
  amount,
  chargeId: `ch-c1-${seq}`,
  providerWalletId: P,
  containerId: 'c1',
  taskId: 't1',
  functionId: 'f1',
});
const container = { containerId: 'c1', nodeId: 'n1', ...ref };

/** A settled soak in miniature: one task that succeeded, two samples charged, posted and credited. */
function goodLog(): Log {
  return new Log()
    .add(WalletOpened, `wallet-${P}`, { ...posting('0'), walletId: P, kind: 'provider', maxDebt: '0', minBalance: '0', policy: 'greedy', openedAtMs: 0 })
    .add(WalletOpened, `wallet-${W}`, { ...posting('0'), walletId: W, kind: 'user', maxDebt: '1', minBalance: '0', policy: 'greedy', openedAtMs: 0 })
    .add(FundsDeposited, `wallet-${W}`, { ...posting('5'), walletId: W, amount: '5', reference: 'd1' })
    .add(TaskSubmitted, 'task-t1', { taskId: 't1', ...ref, input: input(0), priority: 0, maxAttempts: 5, submittedAtMs: 0 })
    .add(ContainerStarted, 'container-c1', {
      ...container,
      dockerId: 'd',
      image: 'i',
      cpuMillis: 1000,
      memoryBytes: 1024,
      cpuMaxMillis: 1000,
      cpuMinMillis: 250,
      coldStartMs: 1,
      startedAtMs: 0,
    })
    .add(ResourceSampled, 'usage-c1', sample(1, 400, 400))
    .add(ResourceSampled, 'usage-c1', sample(2, 600, 1000))
    .add(UsageCharged, 'meter-c1', charge(1, 400, '1'))
    .add(UsageCharged, 'meter-c1', charge(2, 600, '0'))
    .add(UsageDebited, `wallet-${W}`, debited(1, '1', '4'))
    .add(UsageCredited, `wallet-${P}`, credited(1, '1', '1'))
    .add(TaskSucceeded, 'task-t1', { taskId: 't1', ...ref, attempt: 1, executionId: 'x1', outputRef: { bucket: 'b', key: 'k' }, durationMs: 1 })
    .add(ContainerStopped, 'container-c1', { ...container, reason: 'idle', stoppedAtMs: 1 });
}

const failing = (log: Log, poison: PoisonMessage[] = []) =>
  checkEvents(log.events, poison, new Set([W]), expectedExit)
    .filter((c) => !c.pass)
    .map((c) => c.name);

describe('soak checks (from the raw log)', () => {
  it('given a settled log whose books add up, when checked, then every check passes', () => {
    const results = checkEvents(goodLog().events, [], new Set([W]), expectedExit);
    expect(results.filter((c) => !c.pass)).toEqual([]);
    expect(results.map((c) => c.name)).toEqual<CheckName[]>([
      'tasks-end-once',
      'failures-are-scripts',
      'requeues-justified',
      'books-balance',
      'charges-paired',
      'wallet-balances',
      'usage-cpu',
      'containers-stopped',
      'no-quarantine',
      'no-dead-letters',
    ]);
  });

  it('given a task that ended twice, then tasks-end-once fails', () => {
    const log = goodLog().add(TaskFailed, 'task-t1', { taskId: 't1', ...ref, attempt: 2, reason: 'boom' });
    expect(failing(log)).toEqual(expect.arrayContaining(['tasks-end-once']));
  });

  it('given a task that never ended, then tasks-end-once fails', () => {
    const log = goodLog().add(TaskSubmitted, 'task-t2', { taskId: 't2', ...ref, input: input(0), priority: 0, maxAttempts: 5, submittedAtMs: 0 });
    expect(failing(log)).toEqual(['tasks-end-once']);
  });

  it('given a script that exits 0 but an execution that failed with 137, then failures-are-scripts fails', () => {
    const log = goodLog().add(ExecutionFailed, 'execution-x0', {
      executionId: 'x0',
      taskId: 't1',
      attempt: 1,
      ...container,
      exitCode: 137,
      reason: 'exit-code',
      retryable: false,
      stderrTail: '',
      durationMs: 1,
    });
    expect(failing(log)).toEqual(['failures-are-scripts']);
  });

  it('given a script that exits 3 and a task failed with its own code 3, then nothing fails', () => {
    const log = new Log()
      .add(TaskSubmitted, 'task-t3', { taskId: 't3', ...ref, input: input(3), priority: 0, maxAttempts: 5, submittedAtMs: 0 })
      .add(TaskFailed, 'task-t3', { taskId: 't3', ...ref, attempt: 1, reason: 'exit-code', exitCode: 3 });
    expect(failing(log)).toEqual([]);
  });

  it('given an attempt declared lost for 30000 ms of silence 300 ms after its dispatch, then requeues-justified fails', () => {
    const log = new Log();
    const dispatched = { taskId: 't1', ...ref, attempt: 1, executionId: 't1-1', nodeId: 'n1', input: input(0), dispatchedAtMs: 0 };
    const fn = {
      functionId: 'f1',
      version: 1,
      image: 'i',
      script: 's',
      cpuMinMillis: 250,
      cpuMaxMillis: 1000,
      cpuInitialMillis: 1000,
      memoryBytes: 1024,
      timeoutMs: 1000,
      network: false,
      maxAttempts: 5,
    };
    log.add(TaskDispatched, 'task-t1', { ...dispatched, function: fn });
    log.add(TaskRequeued, 'task-t1', {
      taskId: 't1',
      ...ref,
      attempt: 1,
      reason: 'infrastructure',
      detail: 'execution lost: node n1 has not listed execution t1-1 for 30000 ms',
    });
    log.events[1].occurredAt = '2026-11-30T00:00:00.300Z';
    expect(failing(log)).toEqual(['requeues-justified']);
    log.events[1].occurredAt = '2026-11-30T00:00:31.000Z';
    expect(failing(log)).toEqual([]);
    // A node declared lost is silent since its last heartbeat, which may precede the dispatch: not the attempt's age.
    const requeued = log.events[1];
    if (!isEvent(requeued, TaskRequeued)) throw new Error('the second event is the requeue');
    requeued.data.detail = 'node n1 silent for 10000 ms';
    log.events[1].occurredAt = '2026-11-30T00:00:09.990Z';
    expect(failing(log)).toEqual([]);
  });

  it('given a charge debited twice, then the books and the pairing fail', () => {
    const log = goodLog().add(UsageDebited, `wallet-${W}`, debited(1, '1', '3'));
    expect(failing(log)).toEqual(['books-balance', 'charges-paired']);
  });

  it('given a credit without its charge, then the books and the pairing fail', () => {
    const log = goodLog().add(UsageCredited, `wallet-${P}`, { ...credited(9, '2', '3') });
    expect(failing(log)).toEqual(['books-balance', 'charges-paired']);
  });

  it("given a balanceAfter that is not the sum of the wallet's events, then wallet-balances fails", () => {
    const log = goodLog().add(FundsDeposited, `wallet-${W}`, { ...posting('9'), walletId: W, amount: '1', reference: 'd2' });
    expect(failing(log)).toEqual(['wallet-balances']);
  });

  it('given a sample seq gap, then usage-cpu fails', () => {
    const log = goodLog().add(ResourceSampled, 'usage-c1', sample(4, 0, 1000));
    expect(failing(log)).toEqual(['usage-cpu']);
  });

  it('given sampled CPU off from the measured counter by more than one sample, then usage-cpu fails', () => {
    const log = goodLog()
      .add(ResourceSampled, 'usage-c1', sample(3, 10, 5000))
      .add(UsageCharged, 'meter-c1', charge(3, 10, '0'));
    expect(failing(log)).toEqual(['usage-cpu']);
  });

  it('given a final sample whose counter reads 0 after CPU was used (a stopped container read), then usage-cpu fails and names the reset', () => {
    const log = goodLog()
      .add(ResourceSampled, 'usage-c1', { ...sample(3, 0, 0), final: true })
      .add(UsageCharged, 'meter-c1', charge(3, 0, '0'));
    const usage = checkEvents(log.events, [], new Set([W]), expectedExit).find((c) => c.name === 'usage-cpu');
    expect(usage?.pass).toBe(false);
    expect(usage?.examples.join('\n')).toMatch(/counter went backwards at seq 3 \(final\): counter 1000 -> 0 ns/);
  });

  it('given a quarantine record or poison in the log, then no-quarantine fails', () => {
    const log = goodLog().add(MessageQuarantined, 'deadletter-quarantine-99', {
      subject: 'mesh.events.task.x',
      streamSequence: '99',
      reason: 'not JSON',
      reader: 'readAll',
    });
    expect(failing(log)).toEqual(['no-quarantine']);
    expect(failing(goodLog(), [new PoisonMessage(7, 'mesh.events.wallet.w1', 'not JSON')])).toEqual(['no-quarantine']);
  });
});
