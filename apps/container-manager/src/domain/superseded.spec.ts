import { isSuperseded } from './superseded';

const e = (type: string, attempt?: number) => ({ type, data: { taskId: 't1', ...(attempt === undefined ? {} : { attempt }) } });

describe('isSuperseded: whether a dispatched attempt must not run', () => {
  it('runs the current attempt', () => {
    expect(isSuperseded([e('TaskSubmitted'), e('TaskDispatched', 1)], 1)).toBe(false);
    expect(isSuperseded([e('TaskSubmitted'), e('TaskDispatched', 1), e('TaskRequeued', 1), e('TaskDispatched', 2)], 2)).toBe(false);
  });
  it('skips an attempt that was requeued or followed by a later dispatch', () => {
    expect(isSuperseded([e('TaskSubmitted'), e('TaskDispatched', 1), e('TaskRequeued', 1)], 1)).toBe(true);
    expect(isSuperseded([e('TaskSubmitted'), e('TaskDispatched', 1), e('TaskRequeued', 1), e('TaskDispatched', 2)], 1)).toBe(true);
  });
  it('skips every attempt of a task that ended', () => {
    for (const end of ['TaskSucceeded', 'TaskFailed', 'TaskCancelled']) {
      expect(isSuperseded([e('TaskSubmitted'), e('TaskDispatched', 1), e(end, 1)], 1)).toBe(true);
    }
  });
});
