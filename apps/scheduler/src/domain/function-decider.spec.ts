import { ContractError, FUNCTION_DEFAULTS, FunctionDeployed, OPERATOR } from '@mesh/contracts';
import { decided } from '../../test/fixtures';
import { spec } from '@mesh/testing/decider-spec';
import { functionDecider, specFromRequest, toNewFunctionEvent } from './function-decider';

const body = { functionId: 'fn', image: 'mesh/task-base:latest', script: 'echo hi' };

describe('function decider', () => {
  it('fills the defaults (250/4000/1000 m, 256 MiB, 15 min, no network, 3 attempts)', () => {
    expect(specFromRequest(body)).toEqual({ ...body, ...FUNCTION_DEFAULTS });
  });
  it('clamps default min and initial into a range the user gave', () => {
    expect(specFromRequest({ ...body, cpuMaxMillis: 500 })).toMatchObject({ cpuMinMillis: 250, cpuInitialMillis: 500, cpuMaxMillis: 500 });
    expect(specFromRequest({ ...body, cpuMinMillis: 2000 })).toMatchObject({ cpuMinMillis: 2000, cpuInitialMillis: 2000, cpuMaxMillis: 4000 });
    expect(specFromRequest({ ...body, cpuMaxMillis: 100 })).toMatchObject({ cpuMinMillis: 100, cpuInitialMillis: 100, cpuMaxMillis: 100 });
  });
  it('deploys version 1, then version + 1 per change, nothing for the same spec', () => {
    const v1 = decided(FunctionDeployed, { ...specFromRequest(body), version: 1 });
    spec(functionDecider)
      .given([])
      .when({ kind: 'deploy', caller: OPERATOR, spec: specFromRequest(body) })
      .then([v1]);
    spec(functionDecider)
      .given([v1])
      .when({ kind: 'deploy', caller: OPERATOR, spec: specFromRequest(body) })
      .thenNothing();
    spec(functionDecider)
      .given([v1])
      .when({ kind: 'deploy', caller: OPERATOR, spec: specFromRequest({ ...body, script: 'echo v2' }) })
      .then((events) => expect(events.map((e) => [e.data.version, e.data.script])).toEqual([[2, 'echo v2']]));
    expect(toNewFunctionEvent(v1).id).toBe('fn-v1');
  });
  it('refuses min > max and an initial outside [min, max], naming the field', () => {
    spec(functionDecider)
      .given([])
      .when({ kind: 'deploy', caller: OPERATOR, spec: specFromRequest({ ...body, cpuMinMillis: 3000, cpuMaxMillis: 1000 }) })
      .thenThrows(ContractError, /cpuMinMillis: must be <= cpuMaxMillis/);
    spec(functionDecider)
      .given([])
      .when({ kind: 'deploy', caller: OPERATOR, spec: specFromRequest({ ...body, cpuMinMillis: 500, cpuMaxMillis: 1000, cpuInitialMillis: 2000 }) })
      .thenThrows(ContractError, /cpuInitialMillis: must be <= cpuMaxMillis/);
  });
});
