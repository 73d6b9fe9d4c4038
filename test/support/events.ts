import { ContainerStarted, StandingChanged, type EventData, type NewEvent } from '@mesh/contracts';

/** Which container, on which node, for which wallet and function. */
export interface ContainerRef {
  containerId: string;
  nodeId: string;
  walletId: string;
  functionId: string;
}

/**
 * The ContainerStarted a container-manager records (event id `started-<containerId>`, Docker id
 * `d<containerId>`, CPU range 250 to 4000 m), for specs and benchmarks that play the node.
 */
export function containerStartedEvent(ref: ContainerRef, limits: { cpuMillis: number; memoryBytes: number }): NewEvent {
  const data: EventData<typeof ContainerStarted> = {
    ...ref,
    dockerId: `d${ref.containerId}`,
    image: 'mesh/task-base:latest',
    cpuMillis: limits.cpuMillis,
    memoryBytes: limits.memoryBytes,
    cpuMaxMillis: 4000,
    cpuMinMillis: 250,
    coldStartMs: 1,
    startedAtMs: Date.now(),
  };
  return { id: `started-${ref.containerId}`, type: ContainerStarted.type, data };
}

/**
 * The credit-manager's verdict that suspends `walletId` (overdrawn past its debt limit of 0.5 GRC),
 * caused by event `cause.eventId` at revision `cause.revision` of its wallet.
 */
export function suspensionData(walletId: string, cause: { eventId: string; revision: number }, changedAtMs: number): EventData<typeof StandingChanged> {
  return {
    walletId,
    from: 'overdrawn',
    to: 'suspended',
    balance: '-0.5',
    currency: 'GRC',
    maxDebt: '0.5',
    minBalance: '0',
    policy: 'greedy',
    causeEventId: cause.eventId,
    causeRevision: cause.revision,
    changedAtMs,
  };
}
