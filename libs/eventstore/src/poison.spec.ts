import { headers as natsHeaders } from 'nats';
import { TestEvent } from '@mesh/contracts';
import { decode, decodeMessage, PoisonMessage, PoisonMessageError, REVISION_HEADER, streamOfSubject } from './poison';

const body = (extra: Record<string, unknown> = {}) => ({
  id: 'e-1',
  type: TestEvent.type,
  stream: 'test-a',
  occurredAt: '2026-01-01T00:00:00.000Z',
  schemaVersion: 1,
  correlationId: 'e-1',
  causationId: 'e-1',
  data: { n: 1 },
  revision: 3,
  ...extra,
});
const message = (data: unknown, subject = 'mesh.events.test.a', revisionHeader?: string) => {
  const headers = natsHeaders();
  if (revisionHeader !== undefined) headers.set(REVISION_HEADER, revisionHeader);
  return { data: Buffer.from(typeof data === 'string' ? data : JSON.stringify(data)), seq: 42, subject, headers };
};
const reasonOf = (decoded: unknown) => (decoded instanceof PoisonMessage ? decoded.reason : 'decoded');

describe('decodeMessage', () => {
  it('given a message as the store writes it, when decoded, then it is the event with its revision and position', () => {
    const event = decodeMessage(message(body()));
    expect(event).toMatchObject({ id: 'e-1', stream: 'test-a', revision: 3, position: 42n, data: { n: 1 } });
  });

  it('given a body without a revision, when decoded, then the Mesh-Revision header gives it, and a missing or malformed header makes it poison', () => {
    const { revision: _revision, ...noRevision } = body();
    expect(decodeMessage(message(noRevision, undefined, '7'))).toMatchObject({ revision: 7 });
    for (const header of [undefined, '', '-1', '01', '1.5', 'x'])
      expect(reasonOf(decodeMessage(message(noRevision, undefined, header)))).toMatch(/^no valid revision/);
    expect(reasonOf(decodeMessage(message(body({ revision: -1 }))))).toMatch(/^no valid revision/);
  });

  it.each([
    ['garbage', message('garbage'), /^not JSON/],
    ['null', message('null'), /^not an envelope: the body is null/],
    ['a number', message('5'), /^not an envelope: the body is number/],
    ['no id', message(body({ id: undefined })), /^not an envelope: id must match/],
    ['a bad timestamp', message(body({ occurredAt: 'yesterday' })), /^not an envelope: occurredAt/],
    ['no data', message(body({ data: undefined })), /^not an envelope: data is required/],
    ['another stream in the body', message(body({ stream: 'test-b' })), /^stream test-b in the body is not the subject's stream test-a/],
    ['an unknown type', message(body({ type: 'NoSuchEvent' })), /^NoSuchEvent is not a known event type/],
    ['a type of another category', message(body({ type: 'WalletOpened' })), /^WalletOpened belongs to category wallet, not test/],
    ['data breaking its schema', message(body({ data: { n: 'one' } })), /^TestEvent data breaks its schema: n: /],
    ['a subject outside the events', message(body(), 'other.subject'), /is not under mesh\.events/],
    ['a subject with too few tokens', message(body(), 'mesh.events.test'), /is not mesh\.events\.<category>\.<id>/],
    ['an unknown category', message(body({ stream: 'nosuch-a' }), 'mesh.events.nosuch.a'), /nosuch is not a known category/],
  ])('given %s, when decoded, then it is poison saying why', (_name, m, reason) => {
    const decoded = decodeMessage(m);
    expect(decoded).toBeInstanceOf(PoisonMessage);
    expect(decoded).toMatchObject({ seq: 42, subject: m.subject });
    expect(reasonOf(decoded)).toMatch(reason);
    expect(() => decode(m)).toThrow(PoisonMessageError);
  });

  it('given event subjects, when their stream is asked for, then it comes from the subject alone', () => {
    expect(streamOfSubject('mesh.events.wallet.alice')).toBe('wallet-alice');
    expect(streamOfSubject('mesh.events.deadletter.quarantine-12')).toBe('deadletter-quarantine-12');
    // A partitioned log (docs/cluster.md "Partitions"): the server's partition token follows the id.
    expect(streamOfSubject('mesh.events.wallet.alice.3')).toBe('wallet-alice');
    const notStream = streamOfSubject('mesh.events.wallet.a.b');
    expect(typeof notStream === 'string' ? notStream : notStream.reason).toMatch(/is not mesh\.events\.<category>\.<id>/);
  });
});
