import { CATEGORIES, CATEGORY_OWNERS, SERVICES } from './ids';
import { assertConsumes, operatorPermissions, servicePermissions, tenantPermissions } from './permissions';

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

  it('a tenant publishes only under its own prefix and its own buckets, and listens only to its inbox and feed', () => {
    const { publish, subscribe } = tenantPermissions('alice');
    expect(allows(publish, 'mesh.tenant.alice.api.ledger.open-wallet')).toBe(true);
    expect(allows(publish, 'mesh.tenant.bob.api.ledger.open-wallet')).toBe(false);
    expect(allows(publish, 'mesh.api.ledger.deposit')).toBe(false);
    expect(allows(publish, 'mesh.events.wallet.alice')).toBe(false);
    expect(allows(publish, '$O.mesh-input-alice.C.x')).toBe(true);
    expect(allows(publish, '$O.mesh-output-alice.C.x')).toBe(false);
    expect(allows(publish, '$O.mesh-input-bob.C.x')).toBe(false);
    expect(allows(publish, '$JS.API.STREAM.INFO.MESH_EVENTS')).toBe(false);
    expect(allows(publish, '$JS.API.STREAM.CREATE.OBJ_mesh-input-alice')).toBe(false);
    expect(allows(subscribe, '_INBOX_alice.x')).toBe(true);
    expect(allows(subscribe, 'mesh.tenant.alice.events.wallet.alice')).toBe(true);
    expect(allows(subscribe, '_INBOX_bob.x')).toBe(false);
    expect(allows(subscribe, 'mesh.events.wallet.alice')).toBe(false);
  });

  it('a durable consumer the table does not list is refused by name', () => {
    expect(() => assertConsumes('scaler', 'wallet')).toThrow(/scaler may not start a durable consumer on category "wallet"/);
    expect(() => assertConsumes('ledger', 'meter')).not.toThrow();
  });
});
