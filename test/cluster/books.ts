import type { RecordedEvent } from '@mesh/contracts';
import { readAllPaged, type EventStore, type PoisonMessage } from '@mesh/eventstore';
import { eventually } from '@mesh/testing';
import { checkEvents, type CheckResult } from '../chaos/checks';

/** The whole raw log, poison reported rather than skipped silently. */
export async function readLog(store: EventStore): Promise<{ events: RecordedEvent[]; poison: PoisonMessage[] }> {
  const events: RecordedEvent[] = [];
  const poison: PoisonMessage[] = [];
  for await (const e of readAllPaged(store, 1n, 1000, { quarantine: 'report', onPoison: (p) => poison.push(p) })) events.push(e);
  return { events, poison };
}

/**
 * The books from the raw log once the stack has settled (samples charged, idle containers
 * stopped): waits up to `timeoutMs` for every check of test/chaos/checks.ts to pass, then returns
 * the checks still failing (empty when all pass: the caller asserts that, so the failures are the
 * message) and the events last read.
 */
export async function settledBooks(
  store: EventStore,
  walletIds: ReadonlySet<string>,
  timeoutMs: number,
): Promise<{ failing: CheckResult[]; events: RecordedEvent[] }> {
  let failing: CheckResult[] = [];
  let events: RecordedEvent[] = [];
  await eventually(
    async () => {
      const log = await readLog(store);
      events = log.events;
      failing = checkEvents(log.events, log.poison, walletIds, () => 0).filter((c) => !c.pass);
      return failing.length === 0;
    },
    timeoutMs,
    'the books from the raw log pass every check',
  ).catch(() => undefined);
  return { failing, events };
}
