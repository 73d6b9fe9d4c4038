import { ContainerStarted, ResourceSampled, StandingChanged, type EventData, type NewEvent, type NewEventOf } from '@mesh/contracts';

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

/** What one sample measured, over the second that ends at `windowEndMs`. */
export interface SampleFigures {
  seq: number;
  windowEndMs: number;
  cpuNanos: number;
  /** Average and peak memory of the window (the same figure). */
  memoryBytes: number;
  cpuLimitMillis: number;
  memoryLimitBytes: number;
  taskId?: string;
}

/** The ResourceSampled a container-manager records for one one-second window (event and sample id `<containerId>-<seq>`, not final). */
export function resourceSampledEvent(ref: ContainerRef, figures: SampleFigures): NewEventOf<typeof ResourceSampled> {
  const { seq, windowEndMs, taskId } = figures;
  return {
    id: `${ref.containerId}-${seq}`,
    type: 'ResourceSampled',
    data: {
      sampleId: `${ref.containerId}-${seq}`,
      ...ref,
      seq,
      ...(taskId ? { taskId } : {}),
      windowStartMs: windowEndMs - 1000,
      windowEndMs,
      cpuNanos: figures.cpuNanos,
      memoryBytesAvg: figures.memoryBytes,
      memoryBytesMax: figures.memoryBytes,
      cpuLimitMillis: figures.cpuLimitMillis,
      memoryLimitBytes: figures.memoryLimitBytes,
      final: false,
    },
  };
}
