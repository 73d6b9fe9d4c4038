import fc from 'fast-check';
import { ContainerStopped, ScalingDecided, type ScalingEvent } from '@mesh/contracts';
import { spec } from '@mesh/testing/decider-spec';
import type { Decider } from '@mesh/eventstore/decider';
import { applyCommand, scalingDecider, type ContainerScalingState, type ScalingCommand, type ScalingFoldedEvent } from './scaling-decider';
import { MiB, afterSample, decided, decisionOf, resizedFor, sample, standing, started } from '../../test/scaling-fixtures';
import { DEFAULT_POLICY, checkPolicy } from './scaling-policy';
import { reactionSamples, simulate, staircase } from '../../test/simulation';

const policy = DEFAULT_POLICY;
const scaling = scalingDecider(policy);
/** The same decider, typed for given/when/then: given any folded event, then its decisions. */
const decider: Decider<ContainerScalingState, ScalingCommand, ScalingFoldedEvent> = scaling;
const B = policy.boundaryMillis;

/** `n` samples from seq `from` at a constant usage and limit. */
const samples = (from: number, n: number, usageCpuMillis: number, cpuLimitMillis = 1000, extra: { memoryBytesMax?: number } = {}) =>
  Array.from({ length: n }, (_, i) => sample({ seq: from + i, usageCpuMillis, cpuLimitMillis, ...extra }));

const decidedOf = (events: readonly ScalingFoldedEvent[]) => decisionOf(events).data;
/** The first decision of c1: 1000 -> 2000 m on samples 1 and 2. */
const scaleUp = () =>
  decided(ScalingDecided, {
    decisionId: 'scale-c1-1',
    containerId: 'c1',
    nodeId: 'n1',
    walletId: 'w1',
    functionId: 'f1',
    fromCpuMillis: 1000,
    toCpuMillis: 2000,
    fromMemoryBytes: 512 * MiB,
    toMemoryBytes: 512 * MiB,
    reason: 'scale-up',
    basedOnSampleSeqs: [1, 2],
    decidedAtMs: afterSample(2),
  });

describe('scaling decider: CPU', () => {
  it('scales up after SCALE_UP_SAMPLES samples above allocation - boundary, proportionally and at once', () => {
    spec(decider)
      .given([started(), sample({ seq: 1, usageCpuMillis: 1000, cpuLimitMillis: 1000 })])
      .when({ observe: sample({ seq: 2, usageCpuMillis: 1000, cpuLimitMillis: 1000 }), nowMs: afterSample(2) })
      .then((events) => {
        // Saturated: 250 m above the threshold x gain 4 = +1000 m.
        expect(decidedOf(events)).toMatchObject(scaleUp().data);
        expect(decidedOf(events).throttleCapMillis).toBeUndefined();
      });
  });

  it('raises less when the usage is only a little above the threshold (but leaves 1.5 x boundary headroom)', () => {
    spec(decider)
      .given([started(), sample({ seq: 1, usageCpuMillis: 800, cpuLimitMillis: 1000 })])
      .when({ observe: sample({ seq: 2, usageCpuMillis: 800, cpuLimitMillis: 1000 }), nowMs: afterSample(2) })
      .then((events) => expect(decidedOf(events).toCpuMillis).toBe(1200)); // max(1000 + 4 x 50, 800 + 375) = 1200
  });

  it('does not scale up on a single high sample', () => {
    spec(decider)
      .given([started(), sample({ seq: 1, usageCpuMillis: 300, cpuLimitMillis: 1000 })])
      .when({ observe: sample({ seq: 2, usageCpuMillis: 1000, cpuLimitMillis: 1000 }), nowMs: afterSample(2) })
      .thenNothing();
  });

  it('needs consecutive samples: a gap in seq breaks the run', () => {
    spec(decider)
      .given([started(), sample({ seq: 1, usageCpuMillis: 1000, cpuLimitMillis: 1000 })])
      .when({ observe: sample({ seq: 3, usageCpuMillis: 1000, cpuLimitMillis: 1000 }), nowMs: afterSample(3) })
      .thenNothing();
  });

  it('never above the function max nor the node headroom', () => {
    spec(decider)
      .given([started({ cpuMillis: 3800 }), sample({ seq: 1, usageCpuMillis: 3800, cpuLimitMillis: 3800 })])
      .when({ observe: sample({ seq: 2, usageCpuMillis: 3800, cpuLimitMillis: 3800 }), nowMs: afterSample(2) })
      .then((events) => expect(decidedOf(events).toCpuMillis).toBe(4000));
    spec(decider)
      .given([started(), ...samples(1, 1, 1000)])
      .when({ observe: sample({ seq: 2, usageCpuMillis: 1000, cpuLimitMillis: 1000 }), nowMs: afterSample(2), headroom: { cpuMillis: 300 } })
      .then((events) => expect(decidedOf(events).toCpuMillis).toBe(1300));
    spec(decider)
      .given([started(), ...samples(1, 1, 1000)])
      .when({ observe: sample({ seq: 2, usageCpuMillis: 1000, cpuLimitMillis: 1000 }), nowMs: afterSample(2), headroom: { cpuMillis: -500 } })
      .thenNothing();
  });

  it('scales down after SCALE_DOWN_SAMPLES samples below allocation - 2 x boundary, to usage + 1.5 x boundary', () => {
    spec(decider)
      .given([started({ cpuMillis: 2000 }), ...samples(1, 5, 600, 2000)])
      .when({ observe: sample({ seq: 6, usageCpuMillis: 700, cpuLimitMillis: 2000 }), nowMs: afterSample(6) })
      .then((events) =>
        expect(decidedOf(events)).toMatchObject({
          fromCpuMillis: 2000,
          toCpuMillis: 700 + 1.5 * B,
          reason: 'scale-down',
          basedOnSampleSeqs: [1, 2, 3, 4, 5, 6],
        }),
      );
    spec(decider)
      .given([started({ cpuMillis: 2000 }), ...samples(1, 4, 600, 2000)])
      .when({ observe: sample({ seq: 5, usageCpuMillis: 600, cpuLimitMillis: 2000 }), nowMs: afterSample(5) })
      .thenNothing();
  });

  it('never below the function min', () => {
    spec(decider)
      .given([started({ cpuMillis: 1000, cpuMinMillis: 500 }), ...samples(1, 5, 0)])
      .when({ observe: sample({ seq: 6, usageCpuMillis: 0, cpuLimitMillis: 1000 }), nowMs: afterSample(6) })
      .then((events) => expect(decidedOf(events).toCpuMillis).toBe(500));
    spec(decider)
      .given([started({ cpuMillis: 500, cpuMinMillis: 500 }), ...samples(1, 5, 0, 500)])
      .when({ observe: sample({ seq: 6, usageCpuMillis: 0, cpuLimitMillis: 500 }), nowMs: afterSample(6) })
      .thenNothing(); // the target equals the allocation: no decision
  });

  it('ignores samples taken under another limit than the applied allocation', () => {
    spec(decider)
      .given([started(), sample({ seq: 1, usageCpuMillis: 500, cpuLimitMillis: 500 })])
      .when({ observe: sample({ seq: 2, usageCpuMillis: 1000, cpuLimitMillis: 1000 }), nowMs: afterSample(2) })
      .thenNothing();
  });

  it('decides nothing while the previous decision is not applied, then again after the timeout', () => {
    const given = [started(), ...samples(1, 2, 1000)];
    const first = decider.decide(
      { observe: sample({ seq: 3, usageCpuMillis: 1000, cpuLimitMillis: 1000 }), nowMs: afterSample(3) },
      given.reduce(decider.evolve, decider.initialState()),
    );
    const pending = decidedOf(first);
    spec(decider)
      .given([...given, sample({ seq: 3, usageCpuMillis: 1000, cpuLimitMillis: 1000 }), ...first])
      .when({ observe: sample({ seq: 4, usageCpuMillis: 1000, cpuLimitMillis: 1000 }), nowMs: afterSample(4) })
      .thenNothing();
    // Never applied: after DECISION_TIMEOUT_MS the next sample decides again (samples every second).
    const timeoutSeq = 3 + policy.decisionTimeoutMs / 1000;
    expect(afterSample(timeoutSeq)).toBeGreaterThanOrEqual(pending.decidedAtMs + policy.decisionTimeoutMs);
    spec(decider)
      .given([...given, sample({ seq: 3, usageCpuMillis: 1000, cpuLimitMillis: 1000 }), ...first, ...samples(4, timeoutSeq - 4, 1000)])
      .when({ observe: sample({ seq: timeoutSeq, usageCpuMillis: 1000, cpuLimitMillis: 1000 }), nowMs: afterSample(timeoutSeq) })
      .then((events) => expect(decidedOf(events)).toMatchObject({ decisionId: 'scale-c1-2', fromCpuMillis: 1000, toCpuMillis: 2000 }));
  });

  it('after the resize, waits for samples under the new limit', () => {
    const decision = scaleUp();
    spec(decider)
      .given([started(), ...samples(1, 2, 1000), decision, resizedFor(decision), sample({ seq: 3, usageCpuMillis: 1000, cpuLimitMillis: 1000 })])
      .when({ observe: sample({ seq: 4, usageCpuMillis: 1900, cpuLimitMillis: 2000 }), nowMs: afterSample(4) })
      .thenNothing();
  });

  it('does not decide twice for a redelivered sample, nor for old or final samples', () => {
    const given = [started(), ...samples(1, 2, 1000)];
    spec(decider)
      .given(given)
      .when({ observe: sample({ seq: 2, usageCpuMillis: 1000, cpuLimitMillis: 1000 }), nowMs: afterSample(2) })
      .thenNothing();
    // Replay: the same samples much later decide nothing.
    spec(decider)
      .given(given.slice(0, 2))
      .when({ observe: sample({ seq: 2, usageCpuMillis: 1000, cpuLimitMillis: 1000 }), nowMs: afterSample(2) + policy.sampleMaxAgeMs + 1000 })
      .thenNothing();
    // An older sample arriving after a newer one: folded, not acted on.
    spec(decider)
      .given([started(), ...samples(2, 2, 1000)])
      .when({ observe: sample({ seq: 1, usageCpuMillis: 1000, cpuLimitMillis: 1000 }), nowMs: afterSample(3) })
      .thenNothing();
    spec(decider)
      .given(given.slice(0, 2))
      .when({ observe: sample({ seq: 2, usageCpuMillis: 1000, cpuLimitMillis: 1000, final: true }), nowMs: afterSample(2) })
      .thenNothing();
  });

  it('decides nothing for unknown or stopped containers', () => {
    spec(decider)
      .given(samples(1, 1, 1000))
      .when({ observe: sample({ seq: 2, usageCpuMillis: 1000, cpuLimitMillis: 1000 }), nowMs: afterSample(2) })
      .thenNothing();
    const stopped = decided(ContainerStopped, {
      containerId: 'c1',
      nodeId: 'n1',
      walletId: 'w1',
      functionId: 'f1',
      reason: 'idle',
      stoppedAtMs: afterSample(1),
    });
    spec(decider)
      .given([started(), ...samples(1, 1, 1000), stopped])
      .when({ observe: sample({ seq: 2, usageCpuMillis: 1000, cpuLimitMillis: 1000 }), nowMs: afterSample(2) })
      .thenNothing();
  });
});

describe('scaling decider: throttle cap', () => {
  it('overdrawn: decides down to the cap at once, even with a decision pending', () => {
    const pending = scaleUp();
    spec(decider)
      .given([started(), ...samples(1, 2, 1000), pending])
      .when({ observe: standing('overdrawn'), nowMs: afterSample(2) + 100 })
      .then((events) =>
        expect(decidedOf(events)).toMatchObject({
          decisionId: 'scale-c1-2',
          fromCpuMillis: 1000,
          toCpuMillis: 500,
          reason: 'throttle',
          throttleCapMillis: 500,
          basedOnSampleSeqs: [2],
        }),
      );
  });

  it('suspended caps too; low and normal do not', () => {
    spec(decider)
      .given([started()])
      .when({ observe: standing('suspended'), nowMs: afterSample(1) })
      .then((events) => expect(decidedOf(events)).toMatchObject({ toCpuMillis: 500, reason: 'throttle' }));
    spec(decider)
      .given([started()])
      .when({ observe: standing('low'), nowMs: afterSample(1) })
      .thenNothing();
  });

  it('already under the cap: no decision, but autoscaling stays under the cap', () => {
    spec(decider)
      .given([started({ cpuMillis: 300 })])
      .when({ observe: standing('overdrawn'), nowMs: afterSample(1) })
      .thenNothing();
    spec(decider)
      .given([started({ cpuMillis: 300 }), standing('overdrawn'), sample({ seq: 1, usageCpuMillis: 300, cpuLimitMillis: 300 })])
      .when({ observe: sample({ seq: 2, usageCpuMillis: 300, cpuLimitMillis: 300 }), nowMs: afterSample(2) })
      .then((events) => expect(decidedOf(events)).toMatchObject({ fromCpuMillis: 300, toCpuMillis: 500, reason: 'scale-up', throttleCapMillis: 500 }));
    spec(decider)
      .given([started({ cpuMillis: 500 }), standing('overdrawn'), sample({ seq: 1, usageCpuMillis: 500, cpuLimitMillis: 500 })])
      .when({ observe: sample({ seq: 2, usageCpuMillis: 500, cpuLimitMillis: 500 }), nowMs: afterSample(2) })
      .thenNothing(); // saturated at the cap: nowhere to go
  });

  it('keeps scaling down under the cap', () => {
    // With the default boundary nothing under 500 m is "low"; a 100 m boundary shows the rule.
    const fine: Decider<ContainerScalingState, ScalingCommand, ScalingFoldedEvent> = scalingDecider({ ...policy, boundaryMillis: 100 });
    const cap = policy.throttleCapMillis;
    spec(fine)
      .given([started({ cpuMillis: cap, cpuMinMillis: 100 }), standing('overdrawn'), ...samples(1, 5, 50, cap)])
      .when({ observe: sample({ seq: 6, usageCpuMillis: 50, cpuLimitMillis: cap }), nowMs: afterSample(6) })
      .then((events) => expect(decidedOf(events)).toMatchObject({ toCpuMillis: 200, reason: 'scale-down', throttleCapMillis: cap }));
  });

  it('re-enforces the cap from samples when the throttle decision was not applied in time', () => {
    spec(decider)
      .given([started(), standing('overdrawn'), sample({ seq: 1, usageCpuMillis: 900, cpuLimitMillis: 1000 })])
      .when({ observe: sample({ seq: 2, usageCpuMillis: 900, cpuLimitMillis: 1000 }), nowMs: afterSample(2) })
      .then((events) => expect(decidedOf(events)).toMatchObject({ toCpuMillis: 500, reason: 'throttle' }));
  });

  it('recovery: unthrottles back to what it had when the usage is saturated at the cap', () => {
    const throttle = decider.decide(
      { observe: standing('overdrawn'), nowMs: afterSample(2) },
      [started({ cpuMillis: 2000 }), ...samples(1, 2, 1900, 2000)].reduce(decider.evolve, decider.initialState()),
    );
    const given = [
      started({ cpuMillis: 2000 }),
      ...samples(1, 2, 1900, 2000),
      standing('overdrawn'),
      ...throttle,
      resizedFor(decisionOf(throttle)),
      ...samples(3, 3, 500, 500),
    ];
    spec(decider)
      .given(given)
      .when({ observe: standing('normal'), nowMs: afterSample(5) + 10 })
      .then((events) =>
        expect(decidedOf(events)).toMatchObject({
          fromCpuMillis: 500,
          toCpuMillis: 2000,
          reason: 'unthrottle',
          basedOnSampleSeqs: [5],
        }),
      );
  });

  it('recovery: unthrottles to usage + 1.5 x boundary when the task uses little', () => {
    spec(decider)
      .given([started({ cpuMillis: 500 }), standing('overdrawn'), ...samples(1, 3, 100, 500)])
      .when({ observe: standing('normal'), nowMs: afterSample(3) + 10 })
      .then((events) => expect(decidedOf(events)).toMatchObject({ fromCpuMillis: 500, toCpuMillis: 100 + Math.ceil(1.5 * B), reason: 'unthrottle' }));
  });

  it('a throttle followed by recovery and normal samples scales up again from the cap', () => {
    const trace: ContainerScalingState[] = [];
    let state = [started({ cpuMillis: 2000 })].reduce(decider.evolve, decider.initialState());
    const step = (command: Parameters<typeof decider.decide>[0]) => {
      const r = applyCommand(scaling, state, command);
      state = r.state;
      for (const d of r.decisions) state = decider.evolve(state, resizedFor(d));
      trace.push(state);
      return r.decisions;
    };
    expect(step({ observe: standing('overdrawn'), nowMs: afterSample(0) })[0].data.toCpuMillis).toBe(500);
    expect(step({ observe: sample({ seq: 1, usageCpuMillis: 500, cpuLimitMillis: 500 }), nowMs: afterSample(1) })).toEqual([]);
    expect(step({ observe: sample({ seq: 2, usageCpuMillis: 500, cpuLimitMillis: 500 }), nowMs: afterSample(2) })).toEqual([]);
    expect(step({ observe: standing('low'), nowMs: afterSample(2) + 10 })[0].data).toMatchObject({ reason: 'unthrottle', toCpuMillis: 2000 });
    expect(state.throttled).toBe(false);
  });
});

describe('scaling decider: memory', () => {
  it('raises the memory limit before it is hit (peak above 90%), to put the peak at 70%', () => {
    spec(decider)
      .given([started()])
      .when({ observe: sample({ seq: 1, usageCpuMillis: 600, cpuLimitMillis: 1000, memoryBytesMax: 470 * MiB }), nowMs: afterSample(1) })
      .then((events) =>
        expect(decidedOf(events)).toMatchObject({
          fromCpuMillis: 1000,
          toCpuMillis: 1000,
          fromMemoryBytes: 512 * MiB,
          toMemoryBytes: Math.ceil((470 * 100) / 70) * MiB,
          reason: 'memory-up',
          basedOnSampleSeqs: [1],
        }),
      );
  });

  it('memory-up is bounded by MEMORY_MAX_BYTES and the node headroom', () => {
    spec(decider)
      .given([started()])
      .when({
        observe: sample({ seq: 1, usageCpuMillis: 600, cpuLimitMillis: 1000, memoryBytesMax: 500 * MiB }),
        nowMs: afterSample(1),
        headroom: { memoryBytes: 10 * MiB },
      })
      .then((events) => expect(decidedOf(events).toMemoryBytes).toBe(522 * MiB));
  });

  it('lowers memory slowly: after MEMORY_DOWN_SAMPLES low samples, by at most one step, never under the peak', () => {
    const n = policy.memoryDownSamples;
    const low = Array.from({ length: n - 1 }, (_, i) => sample({ seq: i + 1, usageCpuMillis: 600, cpuLimitMillis: 1000, memoryBytesMax: 100 * MiB }));
    spec(decider)
      .given([started(), ...low])
      .when({ observe: sample({ seq: n, usageCpuMillis: 600, cpuLimitMillis: 1000, memoryBytesMax: 100 * MiB }), nowMs: afterSample(n) })
      .then((events) => expect(decidedOf(events)).toMatchObject({ toMemoryBytes: 512 * MiB - Math.floor(512 * MiB * 0.1), reason: 'memory-down' }));
    spec(decider)
      .given([started(), ...low.slice(1)])
      .when({ observe: sample({ seq: n, usageCpuMillis: 600, cpuLimitMillis: 1000, memoryBytesMax: 100 * MiB }), nowMs: afterSample(n) })
      .thenNothing();
    // Never under MEMORY_MIN_BYTES.
    const tiny = Array.from({ length: n - 1 }, (_, i) =>
      sample({ seq: i + 1, usageCpuMillis: 600, cpuLimitMillis: 1000, memoryBytesMax: 10 * MiB, memoryLimitBytes: 70 * MiB }),
    );
    spec(decider)
      .given([started({ memoryBytes: 70 * MiB }), ...tiny])
      .when({
        observe: sample({ seq: n, usageCpuMillis: 600, cpuLimitMillis: 1000, memoryBytesMax: 10 * MiB, memoryLimitBytes: 70 * MiB }),
        nowMs: afterSample(n),
      })
      .then((events) => expect(decidedOf(events).toMemoryBytes).toBe(policy.memoryMinBytes));
  });

  it('a CPU and memory change in one decision carries the CPU reason', () => {
    spec(decider)
      .given([started(), sample({ seq: 1, usageCpuMillis: 1000, cpuLimitMillis: 1000 })])
      .when({ observe: sample({ seq: 2, usageCpuMillis: 1000, cpuLimitMillis: 1000, memoryBytesMax: 500 * MiB }), nowMs: afterSample(2) })
      .then((events) =>
        expect(decidedOf(events)).toMatchObject({
          reason: 'scale-up',
          toCpuMillis: 2000,
          toMemoryBytes: Math.ceil((500 * 100) / 70) * MiB,
        }),
      );
  });
});

describe('the stress staircase (usage 1 -> 2 -> 3 -> 2 -> 1 cores, usage = min(demand, allocation))', () => {
  const STEP_SAMPLES = 20;
  const { demandAt, steps } = staircase(STEP_SAMPLES);
  const total = steps.length * STEP_SAMPLES;
  /** Samples right after a rise during which throttling above the boundary is allowed. */
  const SETTLE_UP = policy.scaleUpSamples + 1;
  const SETTLE_DOWN = policy.scaleDownSamples + 2;

  for (const applyDelaySamples of [0, 1]) {
    describe(`decisions applied ${applyDelaySamples === 0 ? 'before the next sample' : 'one sample late'}`, () => {
      const trace = simulate(policy, demandAt, total, { initialCpuMillis: 1000, cpuMinMillis: 250, cpuMaxMillis: 4000, applyDelaySamples });

      it('allocations follow each step within a few samples', () => {
        steps.forEach((step, i) => {
          if (i === 0) return;
          const rising = step.demandCpuMillis > steps[i - 1].demandCpuMillis;
          const reaction = reactionSamples(trace, step.fromSeq, step.fromSeq + STEP_SAMPLES, rising, B);
          if (reaction === undefined) throw new Error(`step ${i}: the allocation never follows the demand`);
          expect(reaction).toBeLessThanOrEqual((rising ? SETTLE_UP : SETTLE_DOWN) + applyDelaySamples);
          // At the end of the step the allocation sits in the stable band just above the demand.
          const last = trace[step.fromSeq + STEP_SAMPLES - 2];
          expect(last.allocationCpuMillis).toBeGreaterThanOrEqual(step.demandCpuMillis);
          expect(last.allocationCpuMillis).toBeLessThanOrEqual(step.demandCpuMillis + 2 * B);
        });
      });

      it('never throttles the task by more than the boundary except right after a rise', () => {
        for (const s of trace) {
          const step = steps.filter((st) => st.fromSeq <= s.seq).pop()!;
          const sinceStep = s.seq - step.fromSeq;
          if (sinceStep < SETTLE_UP + applyDelaySamples) continue;
          expect({ seq: s.seq, overBoundary: s.throttledCpuMillis > B }).toEqual({ seq: s.seq, overBoundary: false });
          expect(s.throttledCpuMillis).toBeLessThanOrEqual(B);
        }
      });

      it('stays within [min, max] and decides only real changes', () => {
        for (const s of trace) {
          expect(s.allocationCpuMillis).toBeGreaterThanOrEqual(250);
          expect(s.allocationCpuMillis).toBeLessThanOrEqual(4000);
          const d = s.decision?.data;
          if (d) expect(d.toCpuMillis !== d.fromCpuMillis || d.toMemoryBytes !== d.fromMemoryBytes).toBe(true);
        }
        const decisions = trace.filter((s) => s.decision && s.decision.data.toCpuMillis !== s.decision.data.fromCpuMillis).length;
        expect(decisions).toBeGreaterThanOrEqual(4);
        expect(decisions).toBeLessThanOrEqual(12); // no storm
      });
    });
  }
});

describe('scaling policy', () => {
  it('refuses a window shorter than the scale-down run', () => {
    expect(() => checkPolicy({ ...DEFAULT_POLICY, windowSamples: 4 })).toThrow(/SCALE_DOWN_SAMPLES: must be <= WINDOW_SAMPLES \(4\)/);
    expect(() => checkPolicy({ ...DEFAULT_POLICY, memoryTargetPct: 95 })).toThrow(/MEMORY_TARGET_PCT: must be < MEMORY_HIGH_WATERMARK_PCT/);
  });
});

describe('scaling decider: invariants under random demand, standing and apply delays (fast-check)', () => {
  it('stays within [min, max], under the cap while capped, changes something, and never overtakes a pending decision', () => {
    const step = fc.record({
      demandCpuMillis: fc.integer({ min: 0, max: 6000 }),
      memoryMiB: fc.integer({ min: 1, max: 2000 }),
      standing: fc.constantFrom<undefined | 'normal' | 'low' | 'overdrawn' | 'suspended'>(
        undefined,
        undefined,
        undefined,
        'normal',
        'low',
        'overdrawn',
        'suspended',
      ),
      applied: fc.boolean(),
    });
    fc.assert(
      fc.property(fc.array(step, { minLength: 1, maxLength: 120 }), fc.integer({ min: 250, max: 2000 }), (steps, cpuMinMillis) => {
        const cpuMaxMillis = 4000;
        let state = decider.evolve(decider.initialState(), started({ cpuMinMillis, cpuMaxMillis, cpuMillis: 1000 }));
        let unapplied: ScalingEvent | undefined;
        steps.forEach((s, i) => {
          const seq = i + 1;
          const nowMs = afterSample(seq);
          if (unapplied && s.applied) {
            state = decider.evolve(state, resizedFor(unapplied));
            unapplied = undefined;
          }
          const commands = [
            ...(s.standing ? [{ observe: standing(s.standing), nowMs }] : []),
            {
              observe: sample({
                seq,
                usageCpuMillis: Math.min(s.demandCpuMillis, state.cpuMillis),
                cpuLimitMillis: state.cpuMillis,
                memoryBytesMax: Math.min(s.memoryMiB * MiB, state.memoryBytes),
                memoryLimitBytes: state.memoryBytes,
              }),
              nowMs,
            },
          ];
          for (const command of commands) {
            const before = state;
            const result = applyCommand(scaling, state, command);
            state = result.state;
            for (const d of result.decisions) {
              const data = d.data;
              expect(data.toCpuMillis !== data.fromCpuMillis || data.toMemoryBytes !== data.fromMemoryBytes).toBe(true);
              expect(data.toCpuMillis).toBeLessThanOrEqual(cpuMaxMillis);
              if (state.throttled) expect(data.toCpuMillis).toBeLessThanOrEqual(policy.throttleCapMillis);
              else expect(data.toCpuMillis).toBeGreaterThanOrEqual(cpuMinMillis);
              expect(data.toMemoryBytes).toBeLessThanOrEqual(Math.max(policy.memoryMaxBytes, data.fromMemoryBytes));
              expect(data.decisionId).toBe(`scale-c1-${before.decisions + 1}`);
              const pendingActive = before.pending && command.nowMs - before.pending.decidedAtMs < policy.decisionTimeoutMs;
              if (pendingActive) expect(['throttle', 'unthrottle']).toContain(data.reason);
              unapplied = d;
            }
            expect(result.decisions.length).toBeLessThanOrEqual(1);
          }
        });
      }),
      { numRuns: 300 },
    );
  });
});
