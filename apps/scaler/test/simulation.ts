import type { ScalingEvent } from '@mesh/contracts';
import { applyCommand, scalingDecider, type ContainerScalingState } from '../src/domain/scaling-decider';
import type { ScalingPolicy } from '../src/domain/scaling-policy';
import { afterSample, resizedFor, sample, started } from './scaling-fixtures';

export interface SimulatedSample {
  seq: number;
  demandCpuMillis: number;
  /** Allocation the sample was taken under. */
  allocationCpuMillis: number;
  /** A CPU-bound task cannot use more than its limit. */
  usageCpuMillis: number;
  /** Demand the limit denied the task (demand - usage). */
  throttledCpuMillis: number;
  decision?: ScalingEvent;
}

export interface SimulationOptions {
  initialCpuMillis?: number;
  cpuMinMillis?: number;
  cpuMaxMillis?: number;
  /** Samples between a decision and its ContainerResized (0: applied before the next sample). */
  applyDelaySamples?: number;
}

/**
 * Runs the pure decider against a simulated CPU-bound task whose usage is min(demand, allocation),
 * with the container-manager applying each decision after `applyDelaySamples` samples.
 */
export function simulate(policy: ScalingPolicy, demandAt: (seq: number) => number, samples: number, options: SimulationOptions = {}): SimulatedSample[] {
  const decider = scalingDecider(policy);
  let state: ContainerScalingState = decider.evolve(
    decider.initialState(),
    started({
      cpuMillis: options.initialCpuMillis ?? 1000,
      cpuMinMillis: options.cpuMinMillis ?? 250,
      cpuMaxMillis: options.cpuMaxMillis ?? 4000,
    }),
  );
  const delay = options.applyDelaySamples ?? 0;
  const toApply: { atSeq: number; decision: ScalingEvent }[] = [];
  const trace: SimulatedSample[] = [];
  for (let seq = 1; seq <= samples; seq++) {
    while (toApply.length && toApply[0].atSeq <= seq) state = decider.evolve(state, resizedFor(toApply.shift()!.decision));
    const demandCpuMillis = demandAt(seq);
    const allocationCpuMillis = state.cpuMillis;
    const usageCpuMillis = Math.min(demandCpuMillis, allocationCpuMillis);
    const result = applyCommand(decider, state, {
      observe: sample({ seq, usageCpuMillis, cpuLimitMillis: allocationCpuMillis, memoryLimitBytes: state.memoryBytes }),
      nowMs: afterSample(seq),
    });
    state = result.state;
    const decision = result.decisions[0];
    if (decision) toApply.push({ atSeq: seq + 1 + delay, decision });
    trace.push({ seq, demandCpuMillis, allocationCpuMillis, usageCpuMillis, throttledCpuMillis: demandCpuMillis - usageCpuMillis, decision });
  }
  return trace;
}

/** The reference system's stress staircase: 1 -> 2 -> 3 -> 2 -> 1 cores, `stepSamples` samples each. */
export function staircase(stepSamples: number): { demandAt: (seq: number) => number; steps: { fromSeq: number; demandCpuMillis: number }[] } {
  const levels = [1000, 2000, 3000, 2000, 1000];
  const steps = levels.map((demandCpuMillis, i) => ({ fromSeq: i * stepSamples + 1, demandCpuMillis }));
  return { steps, demandAt: (seq) => levels[Math.min(levels.length - 1, Math.floor((seq - 1) / stepSamples))] };
}

/**
 * Samples from a step (its first sample) until the allocation follows it: for a rise, the first
 * sample not throttled by more than the boundary; for a fall, the first sample whose allocation is
 * within demand + 2 x boundary (the scale-down band). undefined if it never does.
 */
export function reactionSamples(
  trace: SimulatedSample[],
  fromSeq: number,
  toSeqExclusive: number,
  rising: boolean,
  boundaryMillis: number,
): number | undefined {
  for (const s of trace) {
    if (s.seq < fromSeq || s.seq >= toSeqExclusive) continue;
    const follows = rising ? s.throttledCpuMillis <= boundaryMillis : s.allocationCpuMillis <= s.demandCpuMillis + 2 * boundaryMillis;
    if (follows) return s.seq - fromSeq;
  }
  return undefined;
}
