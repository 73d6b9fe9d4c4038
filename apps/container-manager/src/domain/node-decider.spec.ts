import { DomainError, type NodeEvent } from '@mesh/contracts';
import { spec } from '@mesh/testing/decider-spec';
import { nodeDrainDecider } from './node-decider';

const nodeId = 'node-2';
const registered = (atMs = 1): NodeEvent => ({
  type: 'NodeRegistered',
  data: { nodeId, cpuMillis: 2000, memoryBytes: 1024 ** 3, labels: {}, registeredAtMs: atMs, network: false },
});
const drainRequested = (atMs = 5): NodeEvent => ({ type: 'NodeDrainRequested', data: { nodeId, requestedAtMs: atMs } });
const left = (reason: 'shutdown' | 'drained', atMs = 9): NodeEvent => ({ type: 'NodeLeft', data: { nodeId, reason, leftAtMs: atMs } });
const requestDrain = { kind: 'request-drain' as const, nodeId, nowMs: 5 };
const completeDrain = { kind: 'complete-drain' as const, nodeId, nowMs: 9 };

describe('node decider: drain requested', () => {
  it('drains a registered node once', () => {
    spec(nodeDrainDecider).given([registered()]).when(requestDrain).then([drainRequested()]);
    spec(nodeDrainDecider).given([registered(), drainRequested()]).when(requestDrain).thenNothing();
  });
  it('refuses a node that never registered, and one that has left', () => {
    spec(nodeDrainDecider)
      .given([])
      .when(requestDrain)
      .thenThrows(DomainError, /never registered/);
    spec(nodeDrainDecider)
      .given([registered(), left('shutdown')])
      .when(requestDrain)
      .thenThrows(DomainError, /has left/);
    spec(nodeDrainDecider)
      .given([registered(), drainRequested(), left('drained')])
      .when(requestDrain)
      .thenThrows(DomainError, /has left/);
  });
  it('keeps draining over a crash and a new registration; a node that left starts afresh', () => {
    const crashed = spec(nodeDrainDecider).given([registered(1), drainRequested(), registered(7)]);
    expect(crashed.state.draining).toBe(true);
    crashed.when(requestDrain).thenNothing();
    const back = spec(nodeDrainDecider).given([registered(1), drainRequested(), left('drained'), registered(20)]);
    expect(back.state).toEqual({ registered: true, left: false, draining: false });
    back.when(requestDrain).then([drainRequested()]);
  });
});

describe('node decider: drain completed', () => {
  it('leaves (reason drained) only when draining', () => {
    spec(nodeDrainDecider)
      .given([registered(), drainRequested()])
      .when(completeDrain)
      .then([left('drained')]);
    spec(nodeDrainDecider).given([registered()]).when(completeDrain).thenNothing();
    spec(nodeDrainDecider)
      .given([registered(), drainRequested(), left('drained')])
      .when(completeDrain)
      .thenNothing();
    spec(nodeDrainDecider)
      .given([registered(), drainRequested(), left('shutdown')])
      .when(completeDrain)
      .thenNothing();
  });
});
