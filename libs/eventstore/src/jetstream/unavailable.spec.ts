import { ErrorCode, NatsError } from 'nats';
import { isUnavailable } from './jetstream-event-store';

/** What a writer or reader meets while a NATS cluster elects a new leader, and what it must not retry. */
describe('isUnavailable', () => {
  it('given the errors of an election (no answer, no responders, a stream or consumer offline), then each is retried', () => {
    expect(isUnavailable(NatsError.errorForCode(ErrorCode.Timeout))).toBe(true);
    expect(isUnavailable(NatsError.errorForCode(ErrorCode.NoResponders))).toBe(true);
    const offline = new NatsError('consumer is offline', '500');
    expect(isUnavailable(offline)).toBe(true);
    const noLeader = new NatsError('JetStream system temporarily unavailable', '503');
    noLeader.api_error = { code: 503, err_code: 10008, description: 'JetStream system temporarily unavailable' };
    expect(isUnavailable(noLeader)).toBe(true);
  });

  it('given an answer that will not change by asking again (a lost race, a missing message, bad input), then it is not retried', () => {
    const wrongLast = new NatsError('wrong last sequence: 7', '400');
    wrongLast.api_error = { code: 400, err_code: 10071, description: 'wrong last sequence: 7' };
    expect(isUnavailable(wrongLast)).toBe(false);
    expect(isUnavailable(new NatsError('no message found', '404'))).toBe(false);
    expect(isUnavailable(new TypeError('expectedVersion must be an integer'))).toBe(false);
  });
});
