import { OPERATOR } from '@mesh/contracts';
import { replyAllowed } from './transport';

describe('replyAllowed: where a request may be answered', () => {
  const alice = { kind: 'tenant', tenantId: 'alice' } as const;

  it("given a tenant's request, when its reply subject is its own inbox, then it is answered", () => {
    expect(replyAllowed(alice, '_INBOX.t.alice.abc.1')).toBe(true);
  });

  it("given a tenant's request, when its reply subject is the log, the JetStream API or another inbox, then it is not", () => {
    for (const reply of [
      '$JS.API.STREAM.PURGE.MESH_EVENTS',
      'mesh.events.wallet.alice',
      '_INBOX.t.bob.x',
      '_INBOX.t.alice',
      '_INBOX.t.alicex.y',
      '_INBOX.x',
      '_INBOX.operator.x',
      '_INBOX.svc.ledger.x',
    ]) {
      expect({ reply, allowed: replyAllowed(alice, reply) }).toEqual({ reply, allowed: false });
    }
  });

  it('given a request without a reply subject, or from the operator, then nothing is refused (no answer goes out, or a trusted identity chose it)', () => {
    expect(replyAllowed(alice, undefined)).toBe(true);
    expect(replyAllowed(OPERATOR, '_INBOX.anything')).toBe(true);
  });
});
