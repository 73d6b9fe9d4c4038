import { ID_PATTERN } from '@mesh/contracts';
import { eventId, parseNodeLabels } from './event-ids';

describe('event ids and node labels', () => {
  it('joins parts, and keeps long ids valid, deterministic and distinct', () => {
    expect(eventId('exec-1', 'end')).toBe('exec-1-end');
    const long = 'x'.repeat(128);
    const a = eventId(long, 'started');
    const b = eventId(long, 'end');
    expect(a).toMatch(ID_PATTERN);
    expect(a).toHaveLength(128);
    expect(a).toBe(eventId(long, 'started'));
    expect(a).not.toBe(b);
  });

  it('parses k=v labels and names a bad pair', () => {
    expect(parseNodeLabels('zone=a, disk=ssd')).toEqual({ zone: 'a', disk: 'ssd' });
    expect(parseNodeLabels(undefined)).toEqual({});
    expect(() => parseNodeLabels('zone')).toThrow(/NODE_LABELS: "zone" must be key=value/);
  });
});
