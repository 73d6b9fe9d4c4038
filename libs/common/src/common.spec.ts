import { KeyedMutex, messageOf, retry, RetriesExhaustedError } from '@mesh/common';

describe('retry', () => {
  it('given a job failing twice, when retried 3 times, then it returns the third result', async () => {
    let calls = 0;
    const result = await retry(
      'job',
      async () => {
        calls++;
        if (calls < 3) throw new Error(`fail ${calls}`);
        return 'ok';
      },
      { attempts: 3, baseDelayMs: 1 },
    );
    expect([result, calls]).toEqual(['ok', 3]);
  });

  it('given a job always failing, then it throws RetriesExhaustedError with the last failure as cause', async () => {
    const last = new Error('fail 2');
    let calls = 0;
    const outcome = retry(
      'job',
      async () => {
        calls++;
        throw calls === 2 ? last : new Error(`fail ${calls}`);
      },
      { attempts: 2, baseDelayMs: 1 },
    );
    await expect(outcome).rejects.toBeInstanceOf(RetriesExhaustedError);
    await expect(outcome).rejects.toMatchObject({ cause: last, attempts: 2, message: 'job: failed 2 times, last: fail 2' });
  });

  it('given a non-retryable failure, then it is rethrown at once, unchanged', async () => {
    const fatal = new TypeError('bad');
    let calls = 0;
    const outcome = retry(
      'job',
      async () => {
        calls++;
        throw fatal;
      },
      { attempts: 5, baseDelayMs: 1, retryable: (err) => !(err instanceof TypeError) },
    );
    await expect(outcome).rejects.toBe(fatal);
    expect(calls).toBe(1);
  });

  it('refuses a non-positive attempt count', async () => {
    await expect(retry('job', async () => 1, { attempts: 0, baseDelayMs: 1 })).rejects.toThrow('attempts must be an integer >= 1');
  });
});

describe('KeyedMutex', () => {
  it('given jobs on one key, then they run one at a time in call order; other keys run concurrently', async () => {
    const mutex = new KeyedMutex();
    const log: string[] = [];
    const job = (name: string, ms: number) => async () => {
      log.push(`start ${name}`);
      await new Promise((resolve) => setTimeout(resolve, ms));
      log.push(`end ${name}`);
      return name;
    };
    const results = await Promise.all([mutex.run('a', job('a1', 20)), mutex.run('a', job('a2', 1)), mutex.run('b', job('b1', 1))]);
    expect(results).toEqual(['a1', 'a2', 'b1']);
    expect(log.indexOf('end a1')).toBeLessThan(log.indexOf('start a2'));
    expect(log.indexOf('start b1')).toBeLessThan(log.indexOf('end a1'));
    expect(mutex.size).toBe(0);
  });

  it('given a failing job, then the next job on the key still runs', async () => {
    const mutex = new KeyedMutex();
    await expect(
      mutex.run('a', async () => {
        throw new Error('boom');
      }),
    ).rejects.toThrow('boom');
    await expect(mutex.run('a', async () => 'next')).resolves.toBe('next');
  });
});

describe('messageOf', () => {
  it('names the message of an Error, a string, or the JSON of anything else', () => {
    expect([messageOf(new Error('x')), messageOf('y'), messageOf({ code: 1 }), messageOf(undefined), messageOf({ message: 'z', code: 'E' })]).toEqual([
      'x',
      'y',
      '{"code":1}',
      'undefined',
      'z',
    ]);
  });
});
