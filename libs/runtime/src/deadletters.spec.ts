import { MessageDeadLettered, MessageReplayed, TestEvent, eventOf, type RecordedEvent } from '@mesh/contracts';
import { deadLetterId, foldDeadLetters, replayEventId } from './deadletters';
import { failureVerdict, redeliveryDelayMs } from './transport';

let position = 0n;
const recorded = (event: { id: string; type: string; data: unknown }, revision: number): RecordedEvent => ({
  ...event,
  stream: 'deadletter-scaler',
  revision,
  position: ++position,
  occurredAt: '2026-01-01T00:00:00.000Z',
  schemaVersion: 1,
  correlationId: 'c',
  causationId: 'c',
});
const parked = (seq: number, revision: number) =>
  recorded(
    eventOf(MessageDeadLettered, deadLetterId('scaler_test', seq), {
      service: 'scaler',
      consumer: 'scaler_test',
      subject: 'mesh.events.test.a',
      streamSequence: String(seq),
      deliveries: 3,
      error: 'boom',
      cause: 'exhausted',
    }),
    revision,
  );
const replayed = (seq: number, n: number, outcome: 'applied' | 'failed', revision: number) =>
  recorded(
    eventOf(MessageReplayed, replayEventId(deadLetterId('scaler_test', seq), n), {
      deadLetterId: deadLetterId('scaler_test', seq),
      service: 'scaler',
      consumer: 'scaler_test',
      streamSequence: String(seq),
      outcome,
      ...(outcome === 'failed' ? { error: 'still broken' } : {}),
      replayedAt: '2026-01-01T00:01:00.000Z',
    }),
    revision,
  );

describe('dead letters folded from their stream', () => {
  it('given a parked letter, when nothing replayed it, then it is parked with its record', () => {
    const { letters, revision } = foldDeadLetters([parked(7, 0)]);
    expect(revision).toBe(0);
    expect(letters.get('scaler_test-7')).toMatchObject({ status: 'parked', replays: 0, streamSequence: '7', consumer: 'scaler_test', error: 'boom' });
  });
  it('given a failed replay, then the letter stays parked with the replay error; given an applied one, then it is resolved', () => {
    const failedOnce = foldDeadLetters([parked(7, 0), replayed(7, 1, 'failed', 1)]).letters.get('scaler_test-7');
    expect(failedOnce).toMatchObject({ status: 'parked', replays: 1, lastReplayError: 'still broken' });
    const resolved = foldDeadLetters([parked(7, 0), replayed(7, 1, 'failed', 1), replayed(7, 2, 'applied', 2)]);
    expect(resolved.letters.get('scaler_test-7')).toMatchObject({ status: 'resolved', replays: 2, resolvedAt: '2026-01-01T00:01:00.000Z' });
    expect(resolved.revision).toBe(2);
  });
  it('given the same letter parked twice (a retried write), then the first record is kept; other events are ignored', () => {
    const first = parked(7, 0);
    const { letters } = foldDeadLetters([first, parked(7, 1), recorded(eventOf(TestEvent, 'x', { n: 1 }), 2)]);
    expect([...letters.keys()]).toEqual(['scaler_test-7']);
    expect(letters.get('scaler_test-7')?.position).toBe(first.position.toString());
  });
});

describe('retry of a failing delivery', () => {
  const limits = { maxDeliveries: 100, retryWindowMs: 600_000, backoffMaxMs: 30_000 };
  it('backs off from 200 ms, doubling, capped', () => {
    expect([1, 2, 3, 8, 9, 50].map((d) => redeliveryDelayMs(d))).toEqual([200, 400, 800, 25_600, 30_000, 30_000]);
    expect(redeliveryDelayMs(3, 500)).toBe(500);
  });
  it('redelivers within the window, the last wait cut to the window end, then parks', () => {
    expect(failureVerdict(1, 0, limits)).toEqual({ park: false, delayMs: 200 });
    expect(failureVerdict(20, 590_000, limits)).toEqual({ park: false, delayMs: 10_000 });
    expect(failureVerdict(21, 600_000, limits)).toEqual({ park: true });
  });
  it('parks at the delivery bound even within the window (CONSUMER_MAX_DELIVERIES)', () => {
    expect(failureVerdict(100, 1_000, limits)).toEqual({ park: true });
    expect(failureVerdict(99, 1_000, limits)).toEqual({ park: false, delayMs: 30_000 });
  });
  it('rides out a 5-minute outage: the default window keeps a message for 10 minutes within the bound', () => {
    let elapsedMs = 0;
    let deliveries = 1;
    for (;;) {
      const verdict = failureVerdict(deliveries, elapsedMs, limits);
      if (verdict.park) break;
      elapsedMs += verdict.delayMs;
      deliveries++;
    }
    expect(elapsedMs).toBe(600_000);
    expect(deliveries).toBeLessThan(limits.maxDeliveries);
  });
});
