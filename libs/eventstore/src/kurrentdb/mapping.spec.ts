import { fromKurrentRecord, isMeshStream, toKurrentEvent, uuidForEventId } from './mapping';
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
});
