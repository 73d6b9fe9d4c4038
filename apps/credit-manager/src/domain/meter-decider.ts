import {
  currencyOf,
  DomainError,
  formatAmount,
  parseAmount,
  type EventOf,
  type MeterEvent,
  type UsageAnomalyRecorded,
  type UsageCharged,
} from '@mesh/contracts';
import type { Decider } from '@mesh/eventstore/decider';
import { chargeIdOf } from './event-ids';
import { exactAmount, usageOf, type PlanPrices, type Sample } from './pricing';
import { add, formatRational, parseRational, splitWhole, ZERO, type Rational } from './rational';

/**
 * The meter of one container (stream `meter-<containerId>`): every sample becomes one UsageCharged
 * whose amount is the whole minor units of (carried remainder + exact price of the sample); the
 * fraction left over is carried in the event to the next sample. So after any number of samples
 * sum(amounts) == floor(sum of exact prices): the total is exact to within one minor unit, and
 * nothing below a minor unit is ever dropped or rounded up.
 *
 * Order: samples are consecutive per container (seq 1, 2, ...). A seq already charged is a no-op.
 * A seq beyond the next one is charged at once (nothing waits on a sample that may never come) with
 * a `gap` anomaly naming the skipped seqs; those stay "missing" and are charged when they arrive
 * late (with an `out-of-order` anomaly), so nothing is lost and nothing is charged twice.
 */

/** Missing seqs remembered per container: beyond this a gap's oldest seqs are forgotten (and said so). */
export const MISSING_SEQS_MAX = 1_000;
/** Tasks remembered per container for the per-invocation price. */
export const INVOICED_TASKS_MAX = 1_000;

export type ChargeEvent = EventOf<typeof UsageCharged>;
export type AnomalyEvent = EventOf<typeof UsageAnomalyRecorded>;
/** What the meter of a container decides (its stream never holds the category's third type, PricePlanSet). */
export type MeterDecision = ChargeEvent | AnomalyEvent;

export interface MeterState {
  /** Highest seq charged (0 before the first). */
  lastSeq: number;
  /** Seqs skipped by a gap and not charged yet, ascending. */
  missingSeqs: number[];
  remainder: Rational;
  totalMinor: bigint;
  totalCpuNanos: bigint;
  totalMemoryByteMs: bigint;
  charges: number;
  /** `<reason>:<sampleId>` of every anomaly recorded, so a redelivery does not record it twice. */
  anomalies: Set<string>;
  /** Tasks whose per-invocation price this container already charged (most recent last). */
  invoicedTasks: string[];
}

export interface ChargeSample {
  type: 'ChargeSample';
  sample: Sample;
  /** Whether `container-<containerId>` exists: samples of unknown containers are charged to no one. */
  containerKnown: boolean;
  /** The plan version in effect for the sample (undefined when there is none: refused). */
  plan?: PlanPrices;
  providerWalletId: string;
}

export const initialMeterState = (): MeterState => ({
  lastSeq: 0,
  missingSeqs: [],
  remainder: ZERO,
  totalMinor: 0n,
  totalCpuNanos: 0n,
  totalMemoryByteMs: 0n,
  charges: 0,
  anomalies: new Set(),
  invoicedTasks: [],
});

function anomaly(sample: Sample, reason: AnomalyEvent['data']['reason'], detail: string, extra: Partial<AnomalyEvent['data']> = {}): AnomalyEvent {
  return {
    type: 'UsageAnomalyRecorded',
    data: {
      containerId: sample.containerId,
      sampleId: sample.sampleId,
      sampleSeq: sample.seq,
      reason,
      detail,
      walletId: sample.walletId,
      functionId: sample.functionId,
      ...extra,
    },
  };
}

/** Why a sample can't be priced at all (schema checks catch these first; this is the domain's own guard). */
function invalidSample(sample: Sample): string | undefined {
  if (sample.windowEndMs < sample.windowStartMs) return `windowEndMs ${sample.windowEndMs} is before windowStartMs ${sample.windowStartMs}`;
  if (sample.cpuNanos < 0) return `cpuNanos ${sample.cpuNanos} is negative`;
  if (sample.memoryBytesAvg < 0) return `memoryBytesAvg ${sample.memoryBytesAvg} is negative`;
  return undefined;
}

export function decideMeter(command: ChargeSample, state: MeterState): MeterDecision[] {
  const { sample } = command;
  const recorded = (reason: string) => state.anomalies.has(`${reason}:${sample.sampleId}`);
  if (!command.containerKnown) {
    return recorded('unknown-container')
      ? []
      : [anomaly(sample, 'unknown-container', `no container-${sample.containerId} stream: not charged to wallet ${sample.walletId}`)];
  }
  const invalid = invalidSample(sample);
  if (invalid) return recorded('invalid-window') ? [] : [anomaly(sample, 'invalid-window', `${invalid}: not charged`)];

  const late = sample.seq <= state.lastSeq;
  if (late && !state.missingSeqs.includes(sample.seq)) return []; // already charged: a redelivery or duplicate
  if (!command.plan) throw new DomainError('no_price_plan', `no price plan in effect for function ${sample.functionId} at ${sample.windowStartMs}`);

  const events: MeterDecision[] = [];
  if (late && !recorded('out-of-order')) {
    events.push(anomaly(sample, 'out-of-order', `seq ${sample.seq} arrived after seq ${state.lastSeq}; charged now`));
  }
  if (sample.seq > state.lastSeq + 1 && !recorded('gap')) {
    const from = state.lastSeq + 1;
    const to = sample.seq - 1;
    const forgotten = to - from + 1 > MISSING_SEQS_MAX ? `; only the last ${MISSING_SEQS_MAX} are awaited` : '';
    events.push(
      anomaly(sample, 'gap', `seqs ${from}..${to} missing before seq ${sample.seq}; charged ${sample.seq} now, the missing ones when they arrive${forgotten}`, {
        missingFromSeq: from,
        missingToSeq: to,
      }),
    );
  }
  events.push(charge(command, command.plan, state, late));
  return events;
}

function charge(command: ChargeSample, plan: PlanPrices, state: MeterState, late: boolean): ChargeEvent {
  const { sample } = command;
  const currency = currencyOf(plan.currency);
  const invocation = sample.taskId !== undefined && plan.perInvocationMinor > 0n && !state.invoicedTasks.includes(sample.taskId);
  const usage = usageOf(sample, plan.billing);
  const { whole, fraction } = splitWhole(add(state.remainder, exactAmount(usage, plan, invocation)));
  const data: ChargeEvent['data'] = {
    chargeId: chargeIdOf(sample.sampleId),
    containerId: sample.containerId,
    walletId: sample.walletId,
    functionId: sample.functionId,
    nodeId: sample.nodeId,
    ...(sample.taskId !== undefined ? { taskId: sample.taskId } : {}),
    sampleId: sample.sampleId,
    sampleSeq: sample.seq,
    windowStartMs: sample.windowStartMs,
    windowEndMs: sample.windowEndMs,
    cpuNanos: Number(usage.cpuNanos),
    memoryByteMs: usage.memoryByteMs.toString(),
    planId: plan.planId,
    planVersion: plan.version,
    currency: plan.currency,
    amount: formatAmount(whole, currency),
    remainder: formatRational(fraction),
    providerWalletId: command.providerWalletId,
    billing: plan.billing,
    invocation,
    totalAmount: formatAmount(state.totalMinor + whole, currency),
    totalCpuNanos: (state.totalCpuNanos + usage.cpuNanos).toString(),
    totalMemoryByteMs: (state.totalMemoryByteMs + usage.memoryByteMs).toString(),
    ...(late ? { late: true } : {}),
  };
  return { type: 'UsageCharged', data };
}

export function evolveMeter(state: MeterState, event: MeterEvent): MeterState {
  // Plan versions live in their own streams (`meter-plan_<planId>`), never in a container's meter.
  if (event.type === 'PricePlanSet') return state;
  if (event.type === 'UsageAnomalyRecorded') {
    const d = event.data;
    const anomalies = new Set(state.anomalies).add(`${d.reason}:${d.sampleId}`);
    return { ...state, anomalies };
  }
  const d = event.data;
  let missingSeqs = state.missingSeqs.filter((s) => s !== d.sampleSeq);
  if (d.sampleSeq > state.lastSeq + 1) {
    const from = Math.max(state.lastSeq + 1, d.sampleSeq - MISSING_SEQS_MAX);
    for (let s = from; s < d.sampleSeq; s++) missingSeqs.push(s);
    if (missingSeqs.length > MISSING_SEQS_MAX) missingSeqs = missingSeqs.slice(-MISSING_SEQS_MAX);
  }
  const currency = currencyOf(d.currency);
  const invoicedTasks = d.invocation && d.taskId ? [...state.invoicedTasks, d.taskId].slice(-INVOICED_TASKS_MAX) : state.invoicedTasks;
  return {
    ...state,
    lastSeq: Math.max(state.lastSeq, d.sampleSeq),
    missingSeqs,
    remainder: parseRational(d.remainder),
    totalMinor: state.totalMinor + parseAmount(d.amount, currency, { allowZero: true }),
    totalCpuNanos: state.totalCpuNanos + BigInt(d.cpuNanos),
    totalMemoryByteMs: state.totalMemoryByteMs + BigInt(d.memoryByteMs),
    charges: state.charges + 1,
    invoicedTasks,
  };
}

export const meterDecider: Decider<MeterState, ChargeSample, MeterEvent> = {
  initialState: initialMeterState,
  evolve: evolveMeter,
  decide: decideMeter,
};
