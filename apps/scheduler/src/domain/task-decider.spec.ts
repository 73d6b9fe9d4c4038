import {
  DomainError,
  ForbiddenError,
  OPERATOR,
  TaskCancelled,
  TaskDispatched,
  TaskFailed,
  TaskSubmitted,
  TaskSucceeded,
  isEvent,
  type Caller,
  type EventData,
  type TaskEvent,
} from '@mesh/contracts';
import { spec } from '@mesh/testing/decider-spec';
import { decided, dispatched, fnSpec, requeued, running, submitted } from '../../test/fixtures';
import { taskDecider, taskEventId, type TaskCommand } from './task-decider';

const ref = { taskId: 't1', functionId: 'fn', walletId: 'w1' };
const alice: Caller = { kind: 'tenant', tenantId: 'alice' };
const bob: Caller = { kind: 'tenant', tenantId: 'bob' };
const submit: TaskCommand = { kind: 'submit', caller: OPERATOR, ...ref, input: { inline: 'aGk=' }, priority: 0, maxAttempts: 3, nowMs: 1000 };
const dispatch = (attempt: number, nodeId = 'n1'): TaskCommand => ({ kind: 'dispatch', attempt, nodeId, function: fnSpec(), nowMs: 2000 });
const outputRef = { bucket: 'mesh-output', key: 't1-1' };
type TaskSubmittedData = EventData<typeof TaskSubmitted>;

describe('task decider: submit', () => {
  it('puts a new task in the pool at attempt 1', () => {
    spec(taskDecider).given([]).when(submit).then([submitted()]);
  });
  it('is idempotent for the same content and refuses other content under the same id', () => {
    spec(taskDecider).given([submitted()]).when(submit).thenNothing();
    spec(taskDecider)
      .given([submitted()])
      .when({ ...submit, priority: 5 })
      .thenThrows(DomainError, /already exists/);
  });
});

describe('task decider: owners', () => {
  const submittedBy = (tenantId: string) => decided(TaskSubmitted, { ...(submitted().data as TaskSubmittedData), tenantId });
  it("records the submitting tenant on the task and on each dispatch (the operator's task names none)", () => {
    spec(taskDecider)
      .given([])
      .when({ ...submit, caller: alice })
      .then([submittedBy('alice')]);
    spec(taskDecider)
      .given([submittedBy('alice')])
      .when(dispatch(1))
      .then((events) => expect(events.map((e) => isEvent(e, TaskDispatched) && e.data.tenantId)).toEqual(['alice']));
    spec(taskDecider)
      .given([submitted()])
      .when(dispatch(1))
      .then((events) => expect(events.map((e) => isEvent(e, TaskDispatched) && 'tenantId' in e.data)).toEqual([false]));
  });
  it("refuses another tenant's task id on submit (no duplicate to confirm) and lets its owner and the operator resubmit", () => {
    spec(taskDecider)
      .given([submittedBy('alice')])
      .when({ ...submit, caller: bob })
      .thenThrows(ForbiddenError, /^forbidden: tenant bob may not submit task t1$/);
    spec(taskDecider)
      .given([submitted()])
      .when({ ...submit, caller: bob })
      .thenThrows(ForbiddenError, /tenant bob may not submit task t1/);
    spec(taskDecider)
      .given([submittedBy('alice')])
      .when({ ...submit, caller: alice })
      .thenNothing();
    spec(taskDecider)
      .given([submittedBy('alice')])
      .when({ ...submit, caller: OPERATOR })
      .thenNothing();
  });
  it('lets only the owner (or the operator) cancel', () => {
    const cancel = (caller: Caller): TaskCommand => ({ kind: 'cancel', caller, taskId: 't1', reason: 'r' });
    spec(taskDecider)
      .given([submittedBy('alice')])
      .when(cancel(bob))
      .thenThrows(ForbiddenError, /^forbidden: tenant bob may not cancel task t1$/);
    spec(taskDecider)
      .given([submitted()])
      .when(cancel(alice))
      .thenThrows(ForbiddenError, /tenant alice may not cancel task t1/);
    spec(taskDecider)
      .given([submittedBy('alice')])
      .when(cancel(alice))
      .then([decided(TaskCancelled, { ...ref, reason: 'r' })]);
    spec(taskDecider)
      .given([submittedBy('alice')])
      .when(cancel(OPERATOR))
      .then([decided(TaskCancelled, { ...ref, reason: 'r' })]);
  });
});

describe('task decider: dispatch', () => {
  it('dispatches the pending attempt with a self-contained event (spec and input, executionId = taskId-attempt)', () => {
    spec(taskDecider)
      .given([submitted()])
      .when(dispatch(1))
      .then([dispatched(1)]);
  });
  it('never dispatches the same attempt twice, nor a stale attempt', () => {
    spec(taskDecider)
      .given([submitted(), dispatched(1)])
      .when(dispatch(1, 'n2'))
      .thenNothing();
    spec(taskDecider)
      .given([submitted(), dispatched(1), requeued(1, 'aborted', 'wallet suspended')])
      .when(dispatch(1))
      .thenNothing();
    spec(taskDecider)
      .given([submitted(), dispatched(1), requeued(1, 'aborted', 'wallet suspended')])
      .when(dispatch(2))
      .then([dispatched(2)]);
  });
  it('does not dispatch a cancelled task', () => {
    spec(taskDecider)
      .given([submitted(), decided(TaskCancelled, { ...ref, reason: 'x' })])
      .when(dispatch(1))
      .thenNothing();
  });
});

describe('task decider: execution results', () => {
  it('running, then succeeded', () => {
    spec(taskDecider)
      .given([submitted(), dispatched(1)])
      .when({ kind: 'execution-started', executionId: 't1-1', nodeId: 'n1', containerId: 'c1' })
      .then([running(1)]);
    spec(taskDecider)
      .given([submitted(), dispatched(1), running(1)])
      .when({ kind: 'execution-succeeded', executionId: 't1-1', outputRef, durationMs: 50 })
      .then([decided(TaskSucceeded, { ...ref, attempt: 1, executionId: 't1-1', outputRef, durationMs: 50 })]);
  });
  it('accepts a success that overtook its start (reordering after a nak)', () => {
    spec(taskDecider)
      .given([submitted(), dispatched(1)])
      .when({ kind: 'execution-succeeded', executionId: 't1-1', outputRef, durationMs: 5 })
      .then((events) => expect(events.map((e) => e.type)).toEqual(['TaskSucceeded']));
  });
  it('ignores results of an old attempt and repeated results', () => {
    const history = [submitted(), dispatched(1), requeued(1, 'node-lost', 'n1 silent'), dispatched(2, 'n2')];
    spec(taskDecider).given(history).when({ kind: 'execution-succeeded', executionId: 't1-1', outputRef, durationMs: 5 }).thenNothing();
    spec(taskDecider).given(history).when({ kind: 'execution-started', executionId: 't1-1', nodeId: 'n1', containerId: 'c1' }).thenNothing();
    spec(taskDecider)
      .given([...history, running(2, 'n2')])
      .when({ kind: 'execution-started', executionId: 't1-2', nodeId: 'n2', containerId: 'c1' })
      .thenNothing();
  });
  it('a non-retryable failure fails the task with its reason and exit code', () => {
    spec(taskDecider)
      .given([submitted(), dispatched(1), running(1)])
      .when({ kind: 'execution-failed', executionId: 't1-1', reason: 'exit-code', exitCode: 3, retryable: false })
      .then([decided(TaskFailed, { ...ref, attempt: 1, reason: 'exit-code', exitCode: 3 })]);
  });
  it('a retryable failure requeues while attempts remain (agent-restart keeps its name)', () => {
    spec(taskDecider)
      .given([submitted(), dispatched(1), running(1)])
      .when({ kind: 'execution-failed', executionId: 't1-1', reason: 'agent-restart', retryable: true })
      .then([requeued(1, 'agent-restart', 'agent-restart')]);
    spec(taskDecider)
      .given([submitted(), dispatched(1)])
      .when({ kind: 'execution-failed', executionId: 't1-1', reason: 'docker-error', retryable: true, detail: 'daemon down' })
      .then([requeued(1, 'infrastructure', 'docker-error: daemon down')]);
  });
  it('a timeout fails at once (not retried)', () => {
    spec(taskDecider)
      .given([submitted(), dispatched(1), running(1)])
      .when({ kind: 'execution-timed-out', executionId: 't1-1', timeoutMs: 60000 })
      .then([decided(TaskFailed, { ...ref, attempt: 1, reason: 'timeout: ran past 60000 ms' })]);
  });
  it('an abort for suspension requeues; an abort for cancellation changes nothing', () => {
    spec(taskDecider)
      .given([submitted(), dispatched(1), running(1)])
      .when({ kind: 'execution-aborted', executionId: 't1-1', reason: 'suspended' })
      .then([requeued(1, 'aborted', 'wallet suspended')]);
    spec(taskDecider)
      .given([submitted(), dispatched(1), running(1), decided(TaskCancelled, { ...ref, reason: 'x', executionId: 't1-1', nodeId: 'n1' })])
      .when({ kind: 'execution-aborted', executionId: 't1-1', reason: 'cancelled' })
      .thenNothing();
  });
});

describe('task decider: requeue limits', () => {
  const lost = (nodeId: string): TaskCommand => ({ kind: 'node-lost', nodeId, reason: 'node-lost', detail: `node ${nodeId} silent` });
  it('a lost node requeues only the tasks on that node', () => {
    spec(taskDecider)
      .given([submitted(), dispatched(1)])
      .when(lost('n1'))
      .then([requeued(1, 'node-lost', 'node n1 silent')]);
    spec(taskDecider)
      .given([submitted(), dispatched(1)])
      .when(lost('n2'))
      .thenNothing();
    spec(taskDecider).given([submitted()]).when(lost('n1')).thenNothing();
  });
  it('an execution its live node no longer runs (its result lost) is requeued (infrastructure), only for the current attempt', () => {
    const lostCmd = (executionId = 't1-1'): TaskCommand => ({ kind: 'execution-lost', executionId, detail: 'execution lost: node n1 has not listed t1-1' });
    spec(taskDecider)
      .given([submitted(), dispatched(1), running(1)])
      .when(lostCmd())
      .then([requeued(1, 'infrastructure', 'execution lost: node n1 has not listed t1-1')]);
    spec(taskDecider)
      .given([submitted(), dispatched(1)])
      .when(lostCmd())
      .then([requeued(1, 'infrastructure', 'execution lost: node n1 has not listed t1-1')]);
    // A stale detection (the attempt was already requeued and dispatched again) changes nothing: no double dispatch.
    spec(taskDecider)
      .given([submitted(), dispatched(1), requeued(1, 'infrastructure', 'x'), dispatched(2)])
      .when(lostCmd('t1-1'))
      .thenNothing();
    spec(taskDecider)
      .given([submitted(1), dispatched(1), running(1)])
      .when(lostCmd())
      .then((events) => {
        const [failed] = events;
        if (!isEvent(failed, TaskFailed)) throw new Error(`expected TaskFailed, got ${failed?.type}`);
        expect(failed.data.reason).toMatch(/^infrastructure: attempt 1 of 1 ended \(execution lost/);
      });
  });
  it('a dispatch whose node never reported the start is requeued (infrastructure), only while it is still dispatched', () => {
    const timeout = (executionId = 't1-1'): TaskCommand => ({ kind: 'start-timeout', executionId, detail: 'not started within 120000 ms' });
    spec(taskDecider)
      .given([submitted(), dispatched(1)])
      .when(timeout())
      .then([requeued(1, 'infrastructure', 'not started within 120000 ms')]);
    spec(taskDecider)
      .given([submitted(), dispatched(1), running(1)])
      .when(timeout())
      .thenNothing();
    spec(taskDecider)
      .given([submitted(), dispatched(1), requeued(1, 'infrastructure', 'x'), dispatched(2)])
      .when(timeout('t1-1'))
      .thenNothing();
    spec(taskDecider)
      .given([submitted(1), dispatched(1)])
      .when(timeout())
      .then((events) => {
        const [failed] = events;
        if (!isEvent(failed, TaskFailed)) throw new Error(`expected TaskFailed, got ${failed?.type}`);
        expect(failed.data.reason).toMatch(/^infrastructure: attempt 1 of 1/);
      });
  });
  it('every requeue counts as an attempt: the last attempt fails the task naming the cause', () => {
    const history: TaskEvent[] = [
      submitted(3),
      dispatched(1),
      requeued(1, 'aborted', 'wallet suspended'),
      dispatched(2),
      requeued(2, 'node-lost', 'node n1 silent'),
      dispatched(3),
      running(3),
    ];
    spec(taskDecider)
      .given(history)
      .when(lost('n1'))
      .then((events) => {
        expect(events).toHaveLength(1);
        const [failed] = events;
        if (!isEvent(failed, TaskFailed)) throw new Error(`expected TaskFailed, got ${failed.type}`);
        expect(failed.data.attempt).toBe(3);
        expect(failed.data.reason).toMatch(/^node-lost: attempt 3 of 3 ended .*no attempts left$/);
      });
  });
  it('maxAttempts 1: the first abort fails the task', () => {
    spec(taskDecider)
      .given([submitted(1), dispatched(1), running(1)])
      .when({ kind: 'execution-aborted', executionId: 't1-1', reason: 'suspended' })
      .then((events) =>
        expect(events.map((e) => [e.type, isEvent(e, TaskFailed) ? e.data.reason.split(':')[0] : undefined])).toEqual([['TaskFailed', 'aborted']]),
      );
  });
});

describe('task decider: cancel', () => {
  const cancel: TaskCommand = { kind: 'cancel', caller: OPERATOR, taskId: 't1', reason: 'no longer needed' };
  it('cancels a pending task', () => {
    spec(taskDecider)
      .given([submitted()])
      .when(cancel)
      .then([decided(TaskCancelled, { ...ref, reason: 'no longer needed' })]);
  });
  it('cancels a running task naming its execution and node so the node kills it', () => {
    spec(taskDecider)
      .given([submitted(), dispatched(1), running(1)])
      .when(cancel)
      .then([decided(TaskCancelled, { ...ref, reason: 'no longer needed', executionId: 't1-1', nodeId: 'n1' })]);
  });
  it('refuses an unknown or finished task', () => {
    spec(taskDecider)
      .given([])
      .when(cancel)
      .thenThrows(DomainError, /no task t1/);
    spec(taskDecider)
      .given([submitted(), decided(TaskCancelled, { ...ref, reason: 'x' })])
      .when(cancel)
      .thenThrows(DomainError, /already cancelled/);
    spec(taskDecider)
      .given([submitted(), dispatched(1), decided(TaskFailed, { ...ref, attempt: 1, reason: 'exit-code' })])
      .when(cancel)
      .thenThrows(DomainError, /already failed/);
  });
});

describe('task event ids', () => {
  it('derive from the cause so a retried append is deduplicated', () => {
    expect(taskEventId(dispatched(2))).toBe('t1-dispatched-2');
    expect(taskEventId(requeued(2, 'aborted', 'x'))).toBe('t1-requeued-2');
    expect(taskEventId(submitted())).toBe('t1-submitted');
  });
});
