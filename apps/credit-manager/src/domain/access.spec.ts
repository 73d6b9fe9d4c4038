import { DomainError, ForbiddenError, OPERATOR, type Caller } from '@mesh/contracts';
import { assertMayReadStanding, functionVisible, visibleCharges, walletsShown } from './access';

const alice: Caller = { kind: 'tenant', tenantId: 'alice' };
const bob: Caller = { kind: 'tenant', tenantId: 'bob' };
const owners = new Map<string, string | undefined>([
  ['wa', 'alice'],
  ['wop', 'operator'],
]);

describe('credit-manager access: standing', () => {
  it.each([
    ['the operator, any wallet', OPERATOR, 'wa', undefined],
    ['the operator, an unknown wallet', OPERATOR, 'nope', undefined],
    ['its owner', alice, 'wa', undefined],
    ['another tenant', bob, 'wa', /^forbidden: tenant bob may not read the standing of wallet wa$/],
    ["a tenant, the operator's wallet", alice, 'wop', /tenant alice may not read the standing of wallet wop/],
    ['a tenant, an unknown wallet', alice, 'nope', /^no wallet nope$/],
  ])('%s', (_case, caller, walletId, refused) => {
    const read = () => assertMayReadStanding(caller, walletId, owners.get(walletId));
    if (refused) expect(read).toThrow(refused);
    else expect(read).not.toThrow();
  });
  it('refuses with forbidden for a wallet of someone else, unknown_wallet for none', () => {
    expect(() => assertMayReadStanding(bob, 'wa', 'alice')).toThrow(ForbiddenError);
    expect(() => assertMayReadStanding(bob, 'nope', undefined)).toThrow(expect.objectContaining({ code: 'unknown_wallet' }) as DomainError);
  });
});

describe('credit-manager access: charges', () => {
  const charge = (walletId: string) => ({ walletId, chargeId: `c-${walletId}` });
  const given = { charges: [charge('wa')], anomalies: [{ sampleId: 's1' }, { sampleId: 's2', walletId: 'wa' }] };

  it('names every wallet a charges answer would show, from charges and from anomalies that name one', () => {
    expect(walletsShown([charge('wb'), charge('wa')], [{ walletId: 'wc' }, {}])).toEqual(['wa', 'wb', 'wc']);
  });
  it('shows the operator everything', () => {
    expect(visibleCharges(OPERATOR, given, new Map())).toEqual(given);
  });
  it("shows a tenant its own wallet's charges, without the anomalies that name no wallet", () => {
    expect(visibleCharges(alice, given, owners)).toEqual({ charges: given.charges, anomalies: [{ sampleId: 's2', walletId: 'wa' }] });
  });
  it("refuses a tenant the charges of another's wallet, or of an unknown one", () => {
    expect(() => visibleCharges(bob, given, owners)).toThrow(/^forbidden: tenant bob may not read the charges of wallet wa$/);
    expect(() => visibleCharges(alice, { charges: [charge('ghost')], anomalies: [] }, owners)).toThrow(ForbiddenError);
    expect(() => visibleCharges(alice, { charges: [], anomalies: [{ walletId: 'wop' }] }, owners)).toThrow(/may not read the charges of wallet wop/);
  });
  it('shows an empty answer as empty (nothing of anyone to hide)', () => {
    expect(visibleCharges(bob, { charges: [], anomalies: [] }, owners)).toEqual({ charges: [], anomalies: [] });
  });
});

describe('credit-manager access: function plans', () => {
  it.each([
    [OPERATOR, { tenantId: 'alice' }, true],
    [alice, { tenantId: 'alice' }, true],
    [alice, {}, true],
    [bob, { tenantId: 'alice' }, false],
  ])('%o sees the plan of a function %o: %s', (caller, fn, seen) => {
    expect(functionVisible(caller, fn)).toBe(seen);
  });
});
