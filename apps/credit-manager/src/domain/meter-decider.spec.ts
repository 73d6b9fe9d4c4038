import fc from 'fast-check';
import { parseAmount } from '@mesh/contracts';
import { spec } from '@mesh/testing/decider-spec';
import {
  decideMeter,
  evolveMeter,
  initialMeterState,
  meterDecider,
  type ChargeSample,
  type ChargeEvent,
  type MeterDecision,
  type MeterState,
} from './meter-decider';
import { exactAmount, usageOf, type PlanPrices, type Sample } from './pricing';
import { add, floor, rational, ZERO } from './rational';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

/** 6 GRC per core-hour at 8 decimals = 6e8 minor / 3.6e12 core-ns: 1/6000 minor unit per core-ns, 166 2/3 per core-ms. */
const SIX_PER_CORE_HOUR: PlanPrices = {
  planId: 'default',
  version: 1,
  currency: 'GRC',
  billing: 'used',
  cpuPerCoreHourMinor: parseAmount('6'),
  memoryPerGibHourMinor: 0n,
  perInvocationMinor: 0n,
};

function sample(seq: number, over: Partial<Sample> = {}): Sample {
  return {
    sampleId: `c1-${seq}`,
    containerId: 'c1',
    nodeId: 'n1',
    walletId: 'w1',
    functionId: 'f1',
    seq,
    taskId: 't1',
    windowStartMs: 1000 * seq,
    windowEndMs: 1000 * (seq + 1),
    cpuNanos: 1_000_000,
    memoryBytesAvg: 64 * MiB,
    memoryBytesMax: 64 * MiB,
    cpuLimitMillis: 1000,
    memoryLimitBytes: 256 * MiB,
    final: false,
    ...over,
  };
}

const command = (s: Sample, plan: PlanPrices | undefined = SIX_PER_CORE_HOUR, containerKnown = true): ChargeSample => ({
  type: 'ChargeSample',
  sample: s,
  containerKnown,
  plan,
  providerWalletId: 'provider',
});

/** Runs samples through decide + evolve like the handler does. */
function meter(samples: Sample[], plan = SIX_PER_CORE_HOUR, state: MeterState = initialMeterState()) {
  const events: MeterDecision[] = [];
  for (const s of samples) {
    const decided = decideMeter(command(s, plan), state);
    for (const e of decided) state = evolveMeter(state, e);
    events.push(...decided);
  }
  return { state, events, charges: events.filter((e): e is ChargeEvent => e.type === 'UsageCharged') };
}

const minor = (e: ChargeEvent) => parseAmount(e.data.amount, undefined, { allowZero: true });

describe('meter decider: pricing', () => {
  it('prices 1 core-ms at 6 GRC/core-hour as 166 minor units and carries 2/3', () => {
    spec(meterDecider)
      .given([])
      .when(command(sample(1)))
      .then((events) => {
        expect(events).toHaveLength(1);
        const charge = events[0];
        if (charge.type !== 'UsageCharged') throw new Error(`expected UsageCharged, got ${charge.type}`);
        expect(charge.data).toMatchObject({
          chargeId: 'ch-c1-1',
          amount: '0.00000166',
          remainder: '2/3',
          cpuNanos: 1_000_000,
          planId: 'default',
          planVersion: 1,
          walletId: 'w1',
          providerWalletId: 'provider',
          containerId: 'c1',
          taskId: 't1',
          functionId: 'f1',
          sampleId: 'c1-1',
          sampleSeq: 1,
          billing: 'used',
        });
      });
  });

  it('carries the remainder: three core-ms make exactly 500 minor units', () => {
    const { charges } = meter([sample(1), sample(2), sample(3)]);
    expect(charges.map((c) => c.data.amount)).toEqual(['0.00000166', '0.00000167', '0.00000167']);
    expect(charges.map((c) => c.data.remainder)).toEqual(['2/3', '1/3', '0/1']);
    expect(charges[2].data.totalAmount).toBe('0.000005');
  });

  it('charges a sample worth less than one minor unit as 0 and carries it', () => {
    const { charges } = meter([sample(1, { cpuNanos: 3000 }), sample(2, { cpuNanos: 3000 })]); // 0.5 minor each
    expect(charges.map((c) => [c.data.amount, c.data.remainder])).toEqual([
      ['0', '1/2'],
      ['0.00000001', '0/1'],
    ]);
  });

  it('prices memory per GiB-hour exactly and cpu+memory together', () => {
    const plan = { ...SIX_PER_CORE_HOUR, memoryPerGibHourMinor: parseAmount('0.36') }; // 36e6 minor per GiB-hour = 10 minor per GiB-ms
    const memoryOnly = meter([sample(1, { cpuNanos: 0, memoryBytesAvg: GiB, windowStartMs: 0, windowEndMs: 1000 })], plan);
    expect(memoryOnly.charges[0].data).toMatchObject({ amount: '0.0001', remainder: '0/1', memoryByteMs: String(GiB * 1000) });
    // + 1 core-ms (166 2/3 minor) and half a GiB for 1 ms (5 minor)
    const both = meter([sample(1, { cpuNanos: 1_000_000, memoryBytesAvg: GiB / 2, windowStartMs: 0, windowEndMs: 1 })], plan);
    expect(both.charges[0].data).toMatchObject({ amount: '0.00000171', remainder: '2/3' });
  });

  it('prices what was allocated in `allocated` mode', () => {
    const plan: PlanPrices = { ...SIX_PER_CORE_HOUR, billing: 'allocated' };
    const { charges } = meter([sample(1, { cpuNanos: 5, cpuLimitMillis: 500, windowStartMs: 0, windowEndMs: 1000 })], plan);
    // 0.5 core for 1 s = 5e8 core-ns; * 6e8 / 3.6e12 = 83333 1/3 minor units
    expect(charges[0].data).toMatchObject({ cpuNanos: 500_000_000, amount: '0.00083333', remainder: '1/3', billing: 'allocated' });
  });

  it('adds the per-invocation price once per task in a container', () => {
    const plan = { ...SIX_PER_CORE_HOUR, perInvocationMinor: 1000n };
    const { charges } = meter(
      [sample(1, { cpuNanos: 0 }), sample(2, { cpuNanos: 0 }), sample(3, { cpuNanos: 0, taskId: 't2' }), sample(4, { cpuNanos: 0, taskId: undefined })],
      plan,
    );
    expect(charges.map((c) => [c.data.amount, c.data.invocation])).toEqual([
      ['0.00001', true],
      ['0', false],
      ['0.00001', true],
      ['0', false],
    ]);
  });

  it('totals equal floor(price x total usage) over any run (property)', () => {
    const samples = fc.array(fc.tuple(fc.integer({ min: 0, max: 4_000_000_000 }), fc.integer({ min: 0, max: 2 * 1024 * MiB })), {
      minLength: 1,
      maxLength: 60,
    });
    const plan = { ...SIX_PER_CORE_HOUR, memoryPerGibHourMinor: parseAmount('0.01234567') };
    fc.assert(
      fc.property(samples, (list) => {
        const run = list.map(([cpuNanos, memoryBytesAvg], i) => sample(i + 1, { cpuNanos, memoryBytesAvg }));
        const { charges } = meter(run, plan);
        const charged = charges.reduce((sum, c) => sum + minor(c), 0n);
        const exact = run.reduce((sum, s) => add(sum, exactAmount(usageOf(s, 'used'), plan, false)), ZERO);
        return charged === floor(exact) && charged >= 0n;
      }),
      { numRuns: 200 },
    );
  });

  it('uses the plan version it is given and names it in the charge', () => {
    const v2 = { ...SIX_PER_CORE_HOUR, version: 2, cpuPerCoreHourMinor: parseAmount('12') };
    const first = meter([sample(1)]);
    const second = meter([sample(2)], v2, first.state);
    expect(second.charges[0].data).toMatchObject({ planVersion: 2, amount: '0.00000334', remainder: '0/1' }); // 2/3 carried + 333 1/3
  });
});

describe('meter decider: order, duplicates and bad input', () => {
  const charged1 = meter([sample(1)]).events;

  it('charges a redelivered sample only once', () => {
    spec(meterDecider)
      .given(charged1)
      .when(command(sample(1)))
      .thenNothing();
  });

  it('refuses to price without a plan', () => {
    spec(meterDecider)
      .given([])
      .when({ ...command(sample(1)), plan: undefined })
      .thenThrows(Error, /no price plan/);
  });

  it('records a sample of an unknown container as an anomaly, charged to no one, once', () => {
    const events = spec(meterDecider)
      .given([])
      .when(command(sample(1), SIX_PER_CORE_HOUR, false))
      .then((e) => {
        expect(e).toMatchObject([{ type: 'UsageAnomalyRecorded', data: { reason: 'unknown-container', sampleId: 'c1-1', walletId: 'w1' } }]);
      });
    spec(meterDecider)
      .given(events)
      .when(command(sample(1), SIX_PER_CORE_HOUR, false))
      .thenNothing();
  });

  it('records a window ending before it starts as invalid, not charged', () => {
    spec(meterDecider)
      .given([])
      .when(command(sample(1, { windowStartMs: 2000, windowEndMs: 1000 })))
      .then((e) => {
        expect(e).toMatchObject([{ type: 'UsageAnomalyRecorded', data: { reason: 'invalid-window' } }]);
      });
  });

  it('records negative usage as invalid, not charged', () => {
    spec(meterDecider)
      .given([])
      .when(command(sample(1, { cpuNanos: -5 })))
      .then((e) => {
        expect(e).toMatchObject([{ type: 'UsageAnomalyRecorded', data: { reason: 'invalid-window' } }]);
        expect(e[0].type === 'UsageAnomalyRecorded' && e[0].data.detail).toMatch(/negative/);
      });
  });

  it('charges a sample after a gap at once with a gap anomaly, then the missing one late, each once', () => {
    const gap = spec(meterDecider)
      .given(charged1)
      .when(command(sample(4)))
      .then((e) => {
        expect(e.map((x) => x.type)).toEqual(['UsageAnomalyRecorded', 'UsageCharged']);
        expect(e[0].data).toMatchObject({ reason: 'gap', missingFromSeq: 2, missingToSeq: 3 });
      });
    const after = [...charged1, ...gap];
    const late = spec(meterDecider)
      .given(after)
      .when(command(sample(2)))
      .then((e) => {
        expect(e.map((x) => x.type)).toEqual(['UsageAnomalyRecorded', 'UsageCharged']);
        expect(e[0].data).toMatchObject({ reason: 'out-of-order' });
        expect(e[1].data).toMatchObject({ sampleSeq: 2, late: true });
      });
    spec(meterDecider)
      .given([...after, ...late])
      .when(command(sample(2)))
      .thenNothing();
    spec(meterDecider)
      .given([...after, ...late])
      .when(command(sample(4)))
      .thenNothing();
    const state = [...after, ...late].reduce(evolveMeter, initialMeterState());
    expect(state.missingSeqs).toEqual([3]);
    expect(state.lastSeq).toBe(4);
  });

  it('after a crash between a gap anomaly and its charge, the retry writes only the charge', () => {
    const gap = decideMeter(command(sample(4)), charged1.reduce(evolveMeter, initialMeterState()));
    spec(meterDecider)
      .given([...charged1, gap[0]])
      .when(command(sample(4)))
      .then((e) => {
        expect(e.map((x) => x.type)).toEqual(['UsageCharged']);
      });
  });

  it('keeps the charged total exact whatever the arrival order (property)', () => {
    fc.assert(
      fc.property(fc.shuffledSubarray([1, 2, 3, 4, 5, 6, 7, 8], { minLength: 8, maxLength: 8 }), (order) => {
        const run = order.map((seq) => sample(seq, { cpuNanos: 1_000_000 + seq }));
        const { charges, state } = meter([...run, ...run]);
        const charged = charges.reduce((sum, c) => sum + minor(c), 0n);
        const exact = run.reduce((sum, s) => add(sum, exactAmount(usageOf(s, 'used'), SIX_PER_CORE_HOUR, false)), ZERO);
        return charges.length === 8 && charged === floor(exact) && state.missingSeqs.length === 0;
      }),
    );
  });

  it('starts from the carried remainder after a restart (state from the log)', () => {
    const before = meter([sample(1), sample(2)]);
    const replayed = before.events.reduce(evolveMeter, initialMeterState());
    expect(replayed.remainder).toEqual(rational(1n, 3n));
    expect(meter([sample(3)], SIX_PER_CORE_HOUR, replayed).charges[0].data.amount).toBe('0.00000167');
  });
});
