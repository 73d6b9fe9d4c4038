import { spec } from '@mesh/testing/decider-spec';
import { executionAborted, executionRef, executionStarted, executionSucceeded, executionTimedOut, startedData } from '../../test/fixtures';
import { executionDecider, interruptedFailure, type ExecutionCommand } from './execution-decider';

const start: ExecutionCommand = { kind: 'start', started: startedData(1000) };
const succeed: ExecutionCommand = { kind: 'end', end: executionSucceeded() };
const restarted = (nowMs: number): ExecutionCommand => ({ kind: 'interrupt', detail: 'the container-manager restarted while the task ran', nowMs });

describe('execution decider: start', () => {
  it('records the start of a new execution', () => {
    spec(executionDecider)
      .given([])
      .when(start)
      .then([executionStarted(1000)]);
  });
  it('never records a second start, nor a start after the end', () => {
    spec(executionDecider).given([executionStarted()]).when(start).thenNothing();
    spec(executionDecider).given([executionAborted()]).when(start).thenNothing();
  });
});

describe('execution decider: exactly one terminal event', () => {
  it('ends a started execution, and one that failed before it could start', () => {
    spec(executionDecider).given([executionStarted()]).when(succeed).then([executionSucceeded()]);
    spec(executionDecider).given([]).when({ kind: 'end', end: executionTimedOut() }).then([executionTimedOut()]);
  });
  it('decides nothing once an ending is recorded, whichever comes second', () => {
    for (const first of [executionSucceeded(), executionAborted('cancelled'), executionTimedOut()]) {
      spec(executionDecider).given([executionStarted(), first]).when(succeed).thenNothing();
      spec(executionDecider).given([executionStarted(), first]).when({ kind: 'end', end: executionAborted() }).thenNothing();
      spec(executionDecider).given([executionStarted(), first]).when(restarted(5000)).thenNothing();
    }
  });
  it('keeps the first ending when folding (an extra one in the log changes nothing)', () => {
    const { state } = spec(executionDecider).given([executionStarted(), executionAborted(), executionSucceeded()]);
    expect(state).toMatchObject({ status: 'ended', end: 'ExecutionAborted' });
  });
});

describe('execution decider: the container-manager went away under it (agent-restart)', () => {
  it('fails a started execution, retryable, with the time since the recorded start', () => {
    spec(executionDecider)
      .given([executionStarted(1000)])
      .when(restarted(4000))
      .then([
        {
          type: 'ExecutionFailed',
          data: {
            ...executionRef,
            reason: 'agent-restart',
            retryable: true,
            stderrTail: 'the container-manager restarted while the task ran',
            durationMs: 3000,
          },
        },
      ]);
  });
  it('without a recorded start: nothing to end after a restart, the live execution ends at shutdown', () => {
    spec(executionDecider).given([]).when(restarted(4000)).thenNothing();
    const unstarted = { ...executionRef, startedAtMs: 3500 };
    spec(executionDecider)
      .given([])
      .when({ kind: 'interrupt', detail: 'the container-manager stopped while the task ran', nowMs: 4000, unstarted })
      .then([interruptedFailure(unstarted, 'the container-manager stopped while the task ran', 4000)]);
  });
  it('prefers the recorded start over what the node remembers', () => {
    spec(executionDecider)
      .given([executionStarted(1000)])
      .when({ kind: 'interrupt', detail: 'stopped', nowMs: 4000, unstarted: { ...executionRef, startedAtMs: 3900 } })
      .then((events) => expect(events).toMatchObject([{ type: 'ExecutionFailed', data: { durationMs: 3000 } }]));
  });
});
