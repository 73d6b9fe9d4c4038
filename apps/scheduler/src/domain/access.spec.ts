import { ForbiddenError, OPERATOR, FunctionDeployed, type Caller } from '@mesh/contracts';
import { spec } from '@mesh/testing/decider-spec';
import { decided, fnSpec } from '../../test/fixtures';
import { assertInputAllowed, assertMayUseFunction, deployedSpec, mayUseFunction, owns } from './access';
import { functionDecider, specFromRequest } from './function-decider';

const alice: Caller = { kind: 'tenant', tenantId: 'alice' };
const bob: Caller = { kind: 'tenant', tenantId: 'bob' };
const body = { functionId: 'fn', image: 'mesh/task-base:latest', script: 'echo hi' };
const requested = specFromRequest(body);
const deployedBy = (tenantId?: string, extra: { pricePlanId?: string } = {}) =>
  decided(FunctionDeployed, { ...requested, ...extra, ...(tenantId ? { tenantId } : {}), version: 1 });

describe('access: deploy-function', () => {
  it("records the deploying tenant as the function's owner (the operator's function names none)", () => {
    spec(functionDecider)
      .given([])
      .when({ kind: 'deploy', caller: alice, spec: requested })
      .then([deployedBy('alice')]);
    spec(functionDecider).given([]).when({ kind: 'deploy', caller: OPERATOR, spec: requested }).then([deployedBy()]);
  });
  it("refuses a redeploy of another owner's function (hijack), whoever owns it", () => {
    spec(functionDecider)
      .given([deployedBy('alice')])
      .when({ kind: 'deploy', caller: bob, spec: { ...requested, script: 'steal' } })
      .thenThrows(ForbiddenError, /^forbidden: tenant bob may not redeploy function fn$/);
    spec(functionDecider)
      .given([deployedBy()])
      .when({ kind: 'deploy', caller: bob, spec: requested })
      .thenThrows(ForbiddenError, /tenant bob may not redeploy function fn/);
  });
  it('lets the owner redeploy, and the operator too, keeping the recorded owner', () => {
    spec(functionDecider)
      .given([deployedBy('alice')])
      .when({ kind: 'deploy', caller: alice, spec: { ...requested, script: 'v2' } })
      .then((events) => expect(events.map((e) => [e.data.version, e.data.tenantId, e.data.script])).toEqual([[2, 'alice', 'v2']]));
    spec(functionDecider)
      .given([deployedBy('alice')])
      .when({ kind: 'deploy', caller: OPERATOR, spec: { ...requested, script: 'fixed' } })
      .then((events) => expect(events.map((e) => [e.data.version, e.data.tenantId, e.data.script])).toEqual([[2, 'alice', 'fixed']]));
  });
  it('refuses a price plan chosen by a tenant; the operator chooses one', () => {
    spec(functionDecider)
      .given([])
      .when({ kind: 'deploy', caller: alice, spec: { ...requested, pricePlanId: 'cheap' } })
      .thenThrows(ForbiddenError, /^forbidden: tenant alice may not choose pricePlanId cheap for function fn: price plans are assigned by the operator/);
    spec(functionDecider)
      .given([deployedBy('alice', { pricePlanId: 'gold' })])
      .when({ kind: 'deploy', caller: alice, spec: { ...requested, pricePlanId: 'cheap' } })
      .thenThrows(ForbiddenError, /may not choose pricePlanId cheap/);
    spec(functionDecider)
      .given([deployedBy('alice')])
      .when({ kind: 'deploy', caller: OPERATOR, spec: { ...requested, pricePlanId: 'gold' } })
      .then((events) => expect(events.map((e) => [e.data.pricePlanId, e.data.tenantId])).toEqual([['gold', 'alice']]));
  });
  it("keeps the operator's plan when its tenant redeploys (leaving it out, or naming the same one)", () => {
    expect(deployedSpec(alice, { ...requested, script: 'v2' }, deployedBy('alice', { pricePlanId: 'gold' }).data)).toMatchObject({
      pricePlanId: 'gold',
      tenantId: 'alice',
      script: 'v2',
    });
    expect(deployedSpec(alice, { ...requested, pricePlanId: 'gold' }, deployedBy('alice', { pricePlanId: 'gold' }).data)).toMatchObject({
      pricePlanId: 'gold',
    });
  });
});

describe('access: functions, inputs, lists', () => {
  const aliceFn = fnSpec({ functionId: 'a-fn', tenantId: 'alice' });
  const publicFn = fnSpec({ functionId: 'p-fn' });
  it.each([
    ['the operator', OPERATOR, aliceFn, true],
    ['its owner', alice, aliceFn, true],
    ['another tenant', bob, aliceFn, false],
    ["a tenant, the operator's (public) function", bob, publicFn, true],
  ])('function use: %s -> %s', (_who, caller, fn, allowed) => {
    expect(mayUseFunction(caller, fn)).toBe(allowed);
  });
  it("refuses running or reading another tenant's function, naming caller and function", () => {
    expect(() => assertMayUseFunction(bob, aliceFn, 'run')).toThrow(new ForbiddenError('tenant bob may not run function a-fn'));
    expect(() => assertMayUseFunction(bob, aliceFn, 'read')).toThrow(/^forbidden: tenant bob may not read function a-fn$/);
  });
  it.each([
    ['inline input', alice, { inline: 'aGk=' }, undefined],
    ['its own input bucket', alice, { objectRef: { bucket: 'mesh-input-alice', key: 'k' } }, undefined],
    [
      "another tenant's bucket",
      bob,
      { objectRef: { bucket: 'mesh-input-alice', key: 'k' } },
      /tenant bob may not read bucket mesh-input-alice: .*own input bucket mesh-input-bob/,
    ],
    ["the operator's bucket", bob, { objectRef: { bucket: 'mesh-input-operator', key: 'k' } }, /may not read bucket mesh-input-operator/],
    ['any bucket, for the operator', OPERATOR, { objectRef: { bucket: 'mesh-input-alice', key: 'k' } }, undefined],
  ])('task input: %s', (_case, caller, input, refused) => {
    if (refused) expect(() => assertInputAllowed(caller, input)).toThrow(refused);
    else expect(() => assertInputAllowed(caller, input)).not.toThrow();
  });
  it.each([
    [OPERATOR, 'alice', true],
    [OPERATOR, undefined, true],
    [alice, 'alice', true],
    [alice, undefined, false],
    [bob, 'alice', false],
  ])('lists: %o sees a record owned by %s: %s', (caller, tenantId, seen) => {
    expect(owns(caller, tenantId)).toBe(seen);
  });
});
