import {
  ContractError,
  type Caller,
  FUNCTION_DEFAULTS,
  type ContractIssue,
  type FunctionEvent,
  type FunctionSpec,
  type NewEvent,
  type RequestData,
  type deployFunctionRequest,
} from '@mesh/contracts';
import type { Decider } from '@mesh/eventstore/decider';
import { deployedSpec } from './access';

/**
 * The function aggregate (stream `function-<functionId>`): each deploy is a full replacement of the
 * spec (missing fields take the defaults) and bumps the version; the same spec again is a no-op.
 */
export interface FunctionState {
  spec?: FunctionSpec;
}
/** `spec` as requested; the owner and the price plan are settled against the stream by `deployedSpec`. */
export type DeployFunction = { kind: 'deploy'; caller: Caller; spec: Omit<FunctionSpec, 'version' | 'tenantId'> };

/** Fills the defaults of deploy-function; min and initial are clamped into a range the user gave. */
export function specFromRequest(body: RequestData<typeof deployFunctionRequest>): Omit<FunctionSpec, 'version' | 'tenantId'> {
  const cpuMaxMillis = body.cpuMaxMillis ?? Math.max(FUNCTION_DEFAULTS.cpuMaxMillis, body.cpuMinMillis ?? 0, body.cpuInitialMillis ?? 0);
  const cpuMinMillis = body.cpuMinMillis ?? Math.min(FUNCTION_DEFAULTS.cpuMinMillis, cpuMaxMillis, body.cpuInitialMillis ?? Infinity);
  const cpuInitialMillis = body.cpuInitialMillis ?? Math.min(Math.max(FUNCTION_DEFAULTS.cpuInitialMillis, cpuMinMillis), cpuMaxMillis);
  return {
    functionId: body.functionId,
    image: body.image,
    script: body.script,
    cpuMinMillis,
    cpuMaxMillis,
    cpuInitialMillis,
    memoryBytes: body.memoryBytes ?? FUNCTION_DEFAULTS.memoryBytes,
    timeoutMs: body.timeoutMs ?? FUNCTION_DEFAULTS.timeoutMs,
    ...(body.pricePlanId !== undefined ? { pricePlanId: body.pricePlanId } : {}),
    network: body.network ?? FUNCTION_DEFAULTS.network,
    maxAttempts: body.maxAttempts ?? FUNCTION_DEFAULTS.maxAttempts,
  };
}

/** CPU bounds must be ordered: min <= initial <= max. */
export function checkCpuRange(spec: Pick<FunctionSpec, 'cpuMinMillis' | 'cpuMaxMillis' | 'cpuInitialMillis'>): void {
  const issues: ContractIssue[] = [];
  if (spec.cpuMinMillis > spec.cpuMaxMillis)
    issues.push({ field: 'cpuMinMillis', rule: `must be <= cpuMaxMillis (${spec.cpuMinMillis} > ${spec.cpuMaxMillis})` });
  if (spec.cpuInitialMillis < spec.cpuMinMillis)
    issues.push({ field: 'cpuInitialMillis', rule: `must be >= cpuMinMillis (${spec.cpuInitialMillis} < ${spec.cpuMinMillis})` });
  if (spec.cpuInitialMillis > spec.cpuMaxMillis)
    issues.push({ field: 'cpuInitialMillis', rule: `must be <= cpuMaxMillis (${spec.cpuInitialMillis} > ${spec.cpuMaxMillis})` });
  if (issues.length) throw new ContractError('mesh.api.scheduler.deploy-function', issues);
}

const sameSpec = (a: Omit<FunctionSpec, 'version'>, b: FunctionSpec) => {
  const { version: _v, ...rest } = b;
  const left = new Map<string, unknown>(Object.entries(a));
  const right = new Map<string, unknown>(Object.entries(rest));
  return [...new Set([...left.keys(), ...right.keys()])].every((k) => left.get(k) === right.get(k));
};

export const functionDecider: Decider<FunctionState, DeployFunction, FunctionEvent> = {
  initialState: () => ({}),
  evolve: (_state, event) => ({ spec: event.data }),
  decide: (command, state) => {
    // Ownership first: a refused caller learns nothing about the spec it may not replace.
    const spec = deployedSpec(command.caller, command.spec, state.spec);
    checkCpuRange(spec);
    if (state.spec && sameSpec(spec, state.spec)) return [];
    return [{ type: 'FunctionDeployed', data: { ...spec, version: (state.spec?.version ?? 0) + 1 } }];
  },
};

export const toNewFunctionEvent = (event: FunctionEvent): NewEvent => ({
  id: `${event.data.functionId}-v${event.data.version}`,
  type: event.type,
  data: event.data,
});
