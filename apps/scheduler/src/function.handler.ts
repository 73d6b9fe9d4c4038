import assert from 'node:assert/strict';
import { Inject, Injectable } from '@nestjs/common';
import { FunctionDeployed, functionEvents, isEvent, streamName, type Caller, type FunctionEvent, type FunctionSpec } from '@mesh/contracts';
import type { EventStore } from '@mesh/eventstore/port';
import { EVENT_STORE } from '@mesh/runtime';
import { functionDecider, toNewFunctionEvent, type FunctionState } from './domain/function-decider';
import { handleCommand, type CommandResult } from '@mesh/eventstore/decider';

export type FunctionResult = CommandResult<FunctionState, FunctionEvent>;

/** The function aggregate (stream `function-<functionId>`) against the store. */
@Injectable()
export class FunctionHandler {
  constructor(@Inject(EVENT_STORE) private readonly store: EventStore) {}

  /** Deploys a spec for `caller`: a new version when it differs from the current one, nothing otherwise. */
  deploy(caller: Caller, spec: Omit<FunctionSpec, 'version' | 'tenantId'>): Promise<FunctionResult> {
    return handleCommand(
      this.store,
      streamName('function', spec.functionId),
      functionDecider,
      { kind: 'deploy', caller, spec },
      { toNew: toNewFunctionEvent, events: functionEvents },
    );
  }

  /** The latest spec from the stream, undefined when never deployed. */
  async latest(functionId: string): Promise<FunctionSpec | undefined> {
    const stream = streamName('function', functionId);
    const last = (await this.store.read(stream)).at(-1);
    if (!last) return undefined;
    assert(isEvent(last, FunctionDeployed), `${stream} holds a ${last.type}`);
    return last.data;
  }
}
