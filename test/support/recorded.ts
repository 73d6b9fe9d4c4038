import type { RecordedEvent } from '@mesh/contracts';

/**
 * A builder of the events a store hands to readers, for specs that fold them: each call records
 * one more event, at positions 1, 2, 3... with ids e1, e2, e3... (one sequence per builder).
 */
export function recordedEventBuilder(): (type: string, stream: string, data: Record<string, unknown>, atMs: number) => RecordedEvent {
  let position = 0n;
  return (type, stream, data, atMs) => ({
    id: `e${++position}`,
    type,
    stream,
    occurredAt: new Date(atMs).toISOString(),
    schemaVersion: 1,
    correlationId: 'c',
    causationId: 'c',
    data,
    revision: 0,
    position,
  });
}
