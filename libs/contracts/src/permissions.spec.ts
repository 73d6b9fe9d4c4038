import { CATEGORIES, CATEGORY_OWNERS, SERVICES } from './ids';
import { OPERATOR_INBOX_PREFIX, assertConsumes, operatorPermissions, serviceInboxPrefix, servicePermissions, tenantPermissions } from './permissions';

/** NATS subject matching: `*` one token, `>` the rest (at least one token). */
function matches(pattern: string, subject: string): boolean {
  const p = pattern.split('.');
  const s = subject.split('.');
  for (let i = 0; i < p.length; i++) {
    if (p[i] === '>') return s.length > i;
    if (i >= s.length || (p[i] !== '*' && p[i] !== s[i])) return false;
  }
  return p.length === s.length;
}
const allows = (side: { allow: string[]; deny: string[] }, subject: string) =>
  side.allow.some((a) => matches(a, subject)) && !side.deny.some((d) => matches(d, subject));

describe('permission table', () => {
  it.each(SERVICES)('%s publishes events only of the categories it owns (and its dead letters)', (service) => {
    const { publish } = servicePermissions(service);
    for (const category of CATEGORIES.filter((c) => c !== 'test')) {
      const owned = CATEGORY_OWNERS[category] === service || category === 'deadletter';
      expect([category, allows(publish, `mesh.events.${category}.x1`)]).toEqual([category, owned]);
    }
  });

  it.each(SERVICES)('%s may not delete, purge or reconfigure MESH_EVENTS', (service) => {
    const { publish } = servicePermissions(service);
    for (const op of ['DELETE', 'PURGE', 'MSG.DELETE', 'UPDATE']) expect(allows(publish, `$JS.API.STREAM.${op}.MESH_EVENTS`)).toBe(false);
  });

  it('the operator commands and reads but writes no event', () => {
    const { publish } = operatorPermissions();
    expect(allows(publish, 'mesh.api.ledger.deposit')).toBe(true);
    expect(allows(publish, '$JS.API.STREAM.INFO.MESH_EVENTS')).toBe(true);
    expect(allows(publish, 'mesh.events.wallet.alice')).toBe(false);
    expect(allows(publish, '$JS.API.STREAM.PURGE.MESH_EVENTS')).toBe(false);
  });

  it('a tenant publishes only requests under its own prefix, no JetStream at all, and listens only to its inbox and feed', () => {
    const { publish, subscribe } = tenantPermissions('alice');
    expect(allows(publish, 'mesh.tenant.alice.api.ledger.open-wallet')).toBe(true);
    expect(allows(publish, 'mesh.tenant.bob.api.ledger.open-wallet')).toBe(false);
    expect(allows(publish, 'mesh.api.ledger.deposit')).toBe(false);
    expect(allows(publish, 'mesh.events.wallet.alice')).toBe(false);
    for (const js of [
      '$O.mesh-input-alice.C.x',
      '$JS.API.INFO',
      '$JS.API.STREAM.INFO.OBJ_mesh-input-alice',
      '$JS.API.CONSUMER.CREATE.OBJ_mesh-input-alice',
      '$JS.API.CONSUMER.MSG.NEXT.OBJ_mesh-output-alice.c',
      '$JS.API.STREAM.MSG.GET.OBJ_mesh-input-alice',
      '$JS.ACK.OBJ_mesh-input-alice.c.1.1.1.1.1',
      '$JS.FC.x',
      '$KV.mesh-snapshots.x',
      '_INBOX.t.alice.x',
    ]) {
      expect({ js, allowed: allows(publish, js) }).toEqual({ js, allowed: false });
    }
    expect(allows(subscribe, '_INBOX.t.alice.x')).toBe(true);
    expect(allows(subscribe, 'mesh.tenant.alice.events.wallet.alice')).toBe(true);
    expect(allows(subscribe, '_INBOX.t.bob.x')).toBe(false);
    expect(allows(subscribe, '_INBOX.operator.x')).toBe(false);
    expect(allows(subscribe, 'mesh.events.wallet.alice')).toBe(false);
  });

  it('every identity has its own inbox under `_INBOX.`; services answer there without allow_responses', () => {
    for (const service of SERVICES) {
      const p = servicePermissions(service);
      expect(p.allow_responses).toBe(false);
      expect(allows(p.publish, '_INBOX.t.alice.abc')).toBe(true);
      expect(allows(p.subscribe, `${serviceInboxPrefix(service)}.x`)).toBe(true);
      expect(allows(p.subscribe, '_INBOX.t.alice.abc')).toBe(false);
      expect(serviceInboxPrefix(service).startsWith('_INBOX.svc.')).toBe(true);
    }
    expect(allows(operatorPermissions().subscribe, `${OPERATOR_INBOX_PREFIX}.x`)).toBe(true);
    expect(allows(operatorPermissions().subscribe, '_INBOX.svc.ledger.x')).toBe(false);
  });

  it("the scheduler may store inputs in and read outputs of any owner's buckets (tenants have no JetStream)", () => {
    const { publish } = servicePermissions('scheduler');
    expect(allows(publish, '$O.mesh-input-alice.C.x')).toBe(true);
    expect(allows(publish, '$JS.API.STREAM.CREATE.OBJ_mesh-input-alice')).toBe(true);
    expect(allows(publish, '$JS.API.CONSUMER.MSG.NEXT.OBJ_mesh-output-alice.c')).toBe(true);
    expect(allows(servicePermissions('scaler').publish, '$O.mesh-input-alice.C.x')).toBe(false);
  });

  it('a durable consumer the table does not list is refused by name', () => {
    expect(() => assertConsumes('scaler', 'wallet')).toThrow(/scaler may not start a durable consumer on category "wallet"/);
    expect(() => assertConsumes('ledger', 'meter')).not.toThrow();
  });
});
