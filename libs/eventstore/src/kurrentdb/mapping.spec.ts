import { PoisonMessage } from '../poison';
import { classifyKurrentRecord, fromKurrentRecord, isMeshStream, toKurrentEvent, uuidForEventId, type KurrentRecord } from './mapping';
import { relayMessage } from './relay';

describe('KurrentDB mapping (pure, no server)', () => {
  const envelope = {
    id: 'debit-ch-c1-7',
    type: 'UsageDebited',
    stream: 'wallet-alice',
    occurredAt: '2026-11-23T10:00:00.000Z',
    schemaVersion: 1,
    correlationId: 'sample-1',
    causationId: 'ch-c1-7',
    data: { amount: '0.1' },
  };

  it('derives a stable RFC 4122 v5 UUID from a mesh event id', () => {
    const a = uuidForEventId('debit-ch-c1-7');
    expect(a).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(uuidForEventId('debit-ch-c1-7')).toBe(a);
    expect(uuidForEventId('debit-ch-c1-8')).not.toBe(a);
  });

  it('round-trips an envelope through a KurrentDB record', () => {
    const input = toKurrentEvent(envelope, '00-0123456789abcdef0123456789abcdef-0123456789abcdef-01');
    expect(input.metadata).toMatchObject({ meshId: envelope.id, $correlationId: 'sample-1', $causationId: 'ch-c1-7' });
    const recorded = fromKurrentRecord({
      streamId: 'wallet-alice',
      id: input.id,
      type: input.type,
      revision: 4n,
      data: input.data,
      metadata: input.metadata,
      position: { commit: 900n, prepare: 880n },
    });
    expect(recorded).toEqual({ ...envelope, revision: 4, position: 880n, traceparent: '00-0123456789abcdef0123456789abcdef-0123456789abcdef-01' });
  });

  it('keeps KurrentDB system streams out', () => {
    expect(isMeshStream('$et-UsageDebited')).toBe(false);
    expect(isMeshStream('wallet-alice')).toBe(true);
  });

  it('relays an event to the same subject and headers as a native JetStream append', () => {
    const message = relayMessage({ ...envelope, revision: 4, position: 880n });
    expect(message.subject).toBe('mesh.events.wallet.alice');
    expect(message.headers).toMatchObject({ 'Nats-Msg-Id': envelope.id, 'Mesh-Revision': '4', 'Mesh-Type': 'UsageDebited' });
    expect(JSON.parse(Buffer.from(message.body).toString())).toEqual({ ...envelope, revision: 4 });
  });

  describe('classifying what is read back (the same checks as JetStream: poison is skipped and reported)', () => {
    const data = { n: 1 };
    const record = (over: Partial<KurrentRecord>): KurrentRecord => ({
      streamId: 'test-k1',
      id: uuidForEventId('k-1'),
      type: 'TestEvent',
      revision: 2n,
      data,
      metadata: { meshId: 'k-1', occurredAt: '2026-11-23T10:00:00.000Z', schemaVersion: 1, correlationId: 'k-1', causationId: 'k-1' },
      isJson: true,
      position: { commit: 120n, prepare: 100n },
      ...over,
    });
    const reasonOf = (over: Partial<KurrentRecord>) => {
      const classified = classifyKurrentRecord(record(over));
      if (!(classified instanceof PoisonMessage)) throw new Error(`expected poison, got ${classified.type}`);
      expect(classified).toMatchObject({ seq: 100, subject: `mesh.events.${(over.streamId ?? 'test-k1').replace('-', '.')}` });
      return classified.reason;
    };

    it('reads a valid event as the RecordedEvent it is (also a JSON body stored as bytes)', () => {
      expect(classifyKurrentRecord(record({}))).toMatchObject({ id: 'k-1', type: 'TestEvent', stream: 'test-k1', revision: 2, position: 100n, data });
      expect(classifyKurrentRecord(record({ isJson: false, data: Buffer.from('{"n":1}') }))).toMatchObject({ data });
    });

    it('names what is wrong: a body that is not JSON, not an object, an unknown type, a type of another category, data breaking its schema', () => {
      // (the client hands a JSON event's unparsable body back as its raw string)
      expect(reasonOf({ data: '{"n":' })).toMatch(/^not JSON \(/);
      expect(reasonOf({ isJson: false, data: Buffer.from([0xff, 0x00]) })).toMatch(/^not JSON \(/);
      expect(reasonOf({ data: [1, 2] })).toBe('not an event body: the data is an array');
      expect(reasonOf({ type: 'NoSuchEvent' })).toBe('NoSuchEvent is not a known event type');
      expect(reasonOf({ type: 'UsageDebited' })).toBe('UsageDebited belongs to category wallet, not test');
      expect(reasonOf({ data: { n: 'one' } })).toMatch(/^TestEvent data breaks its schema: n: /);
      expect(reasonOf({ streamId: 'bogus-k1' })).toBe('stream bogus-k1: bogus is not a known category');
    });
  });
});
