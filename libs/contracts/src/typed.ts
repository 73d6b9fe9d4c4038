import type { EventData, EventDefinition } from './define';
import type { NewEvent, RecordedEvent } from './envelope';
import { functionEvents, taskEvents } from './events/scheduler';
import { containerEvents, executionEvents, nodeEvents, usageEvents } from './events/container-manager';
import { scalingEvents } from './events/scaler';
import { meterEvents, standingEvents } from './events/credit-manager';
import { walletEvents } from './events/ledger';

/**
 * Typed events derived from the zod definitions, so no reader needs an `as` cast on `data`.
 * The decode boundary (the store adapters and the transport) has already checked the envelope and
 * the catalog checks data on every append, so a recorded event whose `type` is a definition's type
 * carries that definition's data.
 */

/** A recorded event of one definition: `type` is the literal, `data` the schema's output. */
export type RecordedOf<D extends EventDefinition> = RecordedEvent<D['type'], EventData<D>>;

/** A decided (not yet stored) event of one definition: what deciders return and evolve folds. */
export type EventOf<D extends EventDefinition> = { type: D['type']; data: EventData<D> };

/** The discriminated union of the recorded events of a list of definitions. */
export type RecordedUnion<Defs extends readonly EventDefinition[]> = { [K in keyof Defs]: RecordedOf<Defs[K]> }[number];

/** The discriminated union of the decided events of a list of definitions. */
export type EventUnion<Defs extends readonly EventDefinition[]> = { [K in keyof Defs]: EventOf<Defs[K]> }[number];

/** Type guard: `event` is an event of `definition` (switching on `type` then narrows `data`). */
export function isEvent<D extends EventDefinition>(event: RecordedEvent, definition: D): event is RecordedOf<D>;
export function isEvent<D extends EventDefinition>(event: { type: string; data: unknown }, definition: D): event is EventOf<D>;
export function isEvent(event: { type: string }, definition: EventDefinition): boolean {
  return event.type === definition.type;
}

/** Type guard: `event` is one of `definitions` (e.g. one of a category's events). */
export function isEventOf<const Defs extends readonly EventDefinition[]>(
  event: RecordedEvent,
  definitions: Defs,
): event is RecordedUnion<Defs> & RecordedEvent {
  return definitions.some((definition) => definition.type === event.type);
}

/** A typed event ready for the store; `data` is typed by its definition (the store validates it again). */
export type NewEventOf<D extends EventDefinition> = NewEvent<D['type'], EventData<D>>;

// --- one union per category (stream `<category>-<id>`): decided (`XEvent`) and recorded (`RecordedXEvent`)
export type FunctionEvent = EventUnion<typeof functionEvents>;
export type RecordedFunctionEvent = RecordedUnion<typeof functionEvents>;
export type TaskEvent = EventUnion<typeof taskEvents>;
export type RecordedTaskEvent = RecordedUnion<typeof taskEvents>;
export type NodeEvent = EventUnion<typeof nodeEvents>;
export type RecordedNodeEvent = RecordedUnion<typeof nodeEvents>;
export type ContainerEvent = EventUnion<typeof containerEvents>;
export type RecordedContainerEvent = RecordedUnion<typeof containerEvents>;
export type ExecutionEvent = EventUnion<typeof executionEvents>;
export type RecordedExecutionEvent = RecordedUnion<typeof executionEvents>;
export type UsageEvent = EventUnion<typeof usageEvents>;
export type RecordedUsageEvent = RecordedUnion<typeof usageEvents>;
export type ScalingEvent = EventUnion<typeof scalingEvents>;
export type RecordedScalingEvent = RecordedUnion<typeof scalingEvents>;
export type MeterEvent = EventUnion<typeof meterEvents>;
export type RecordedMeterEvent = RecordedUnion<typeof meterEvents>;
export type StandingEvent = EventUnion<typeof standingEvents>;
export type RecordedStandingEvent = RecordedUnion<typeof standingEvents>;
export type WalletEvent = EventUnion<typeof walletEvents>;
export type RecordedWalletEvent = RecordedUnion<typeof walletEvents>;
