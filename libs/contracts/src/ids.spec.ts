import { ContractError } from './errors';
import { parseStreamName, streamName } from './ids';
import { streamForSubject, subjectForStream } from './subjects';

describe('ids and stream names', () => {
  it('splits <category>-<id> at the first dash', () => {
    expect(parseStreamName('wallet-alice')).toEqual({ category: 'wallet', id: 'alice' });
    expect(parseStreamName('execution-task-1-2')).toEqual({ category: 'execution', id: 'task-1-2' });
  });

  it.each(['wallet', '-x', 'Wallet-a', 'unknown-a', 'wallet-a.b', 'wallet-a*', `wallet-${'x'.repeat(129)}`])('refuses %s', (name) => {
    expect(() => parseStreamName(name)).toThrow(ContractError);
  });

  it('maps streams to NATS subjects and back', () => {
    expect(subjectForStream('usage-c123')).toBe('mesh.events.usage.c123');
    expect(streamForSubject('mesh.events.usage.c123')).toBe('usage-c123');
    expect(() => streamName('wallet', 'bad id')).toThrow(/\[A-Za-z0-9_-\]/);
  });
});
