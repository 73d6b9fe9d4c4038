import {
  ContainerResized,
  ContainerStarted,
  ResourceSampled,
  ScalingDecided,
  eventOf,
  isEvent,
  type EventData,
  type EventDefinition,
  type EventOf,
  type ScalingEvent,
  type Standing,
} from '@mesh/contracts';
import type { SampleData, ScalingFact, StandingObserved, StartedData } from '../src/domain/scaling-decider';

/** Builders of the facts the scaler observes, for specs and the benchmark. */
export const SAMPLE_INTERVAL_MS = 1000;
export const T0_MS = 1_700_000_000_000;
export const MiB = 1024 * 1024;

/** A decided event of `definition`, its data checked against the schema (eventOf). */
export function decided<D extends EventDefinition>(definition: D, data: EventData<D>): EventOf<D> {
  const { type, data: checked } = eventOf(definition, 'fixture', data);
  return { type, data: checked };
}

export function started(overrides: Partial<StartedData> = {}): ScalingFact {
  return decided(ContainerStarted, {
    containerId: 'c1',
    nodeId: 'n1',
    walletId: 'w1',
    functionId: 'f1',
    dockerId: 'd1',
    image: 'mesh/task-base:latest',
    cpuMillis: 1000,
    memoryBytes: 512 * MiB,
    cpuMinMillis: 250,
    cpuMaxMillis: 4000,
    coldStartMs: 300,
    startedAtMs: T0_MS,
    ...overrides,
  });
}

export interface SampleSpec {
  seq: number;
  usageCpuMillis: number;
  cpuLimitMillis: number;
  memoryBytesMax?: number;
  memoryLimitBytes?: number;
  final?: boolean;
  containerId?: string;
}

/** Sample number `seq` covers [T0 + (seq-1) s, T0 + seq s) with the given usage. */
export function sample(spec: SampleSpec): ScalingFact {
  const containerId = spec.containerId ?? 'c1';
  const windowEndMs = T0_MS + spec.seq * SAMPLE_INTERVAL_MS;
  const data: SampleData = {
    sampleId: `${containerId}-${spec.seq}`,
    containerId,
    nodeId: 'n1',
    walletId: 'w1',
    functionId: 'f1',
    seq: spec.seq,
    windowStartMs: windowEndMs - SAMPLE_INTERVAL_MS,
    windowEndMs,
    cpuNanos: spec.usageCpuMillis * 1_000_000, // millicores x 1 s = millicore-s = 1e6 ns
    memoryBytesAvg: spec.memoryBytesMax ?? 100 * MiB,
    memoryBytesMax: spec.memoryBytesMax ?? 100 * MiB,
    cpuLimitMillis: spec.cpuLimitMillis,
    memoryLimitBytes: spec.memoryLimitBytes ?? 512 * MiB,
    final: spec.final ?? false,
  };
  return decided(ResourceSampled, data);
}

/** The time right after sample `seq` was taken. */
export const afterSample = (seq: number) => T0_MS + seq * SAMPLE_INTERVAL_MS + 50;

export function standing(to: Standing): StandingObserved {
  return { type: 'StandingObserved', data: { walletId: 'w1', standing: to } };
}

/** The ContainerResized a container-manager records after applying `decision`. */
export function resizedFor(decision: ScalingEvent): ScalingFact {
  return decided(ContainerResized, resizedData(decision.data, 5, decision.data.decidedAtMs + 5));
}

/** The data of the ContainerResized that applies decision `d` in `applyMs`, recorded at `appliedAtMs`. */
export function resizedData(d: ScalingEvent['data'], applyMs: number, appliedAtMs: number): EventData<typeof ContainerResized> {
  return {
    containerId: d.containerId,
    nodeId: d.nodeId,
    walletId: d.walletId,
    functionId: d.functionId,
    decisionId: d.decisionId,
    fromCpuMillis: d.fromCpuMillis,
    toCpuMillis: d.toCpuMillis,
    fromMemoryBytes: d.fromMemoryBytes,
    toMemoryBytes: d.toMemoryBytes,
    applyMs,
    appliedAtMs,
  };
}

/** The one ScalingDecided among `events` (fails the test otherwise). */
export function decisionOf(events: readonly { type: string; data: unknown }[]): ScalingEvent {
  const [decision] = events;
  if (events.length !== 1 || !isEvent(decision, ScalingDecided)) throw new Error(`expected one ScalingDecided, got [${events.map((e) => e.type).join(', ')}]`);
  return decision;
}
