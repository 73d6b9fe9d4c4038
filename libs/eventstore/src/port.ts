import type { NewEvent, RecordedEvent } from '@mesh/contracts';
import type { PoisonMessage } from './poison';

/**
 * The revision the writer expects the stream to be at (0-based index of its last event):
 * -1 / 'no_stream' for a stream that must not exist yet; 'any' to skip the check.
 */
export type ExpectedVersion = number | 'no_stream' | 'any';

export interface AppendResult {
  /** Revision of the last event written (or found already written, on an idempotent retry). */
  nextExpectedVersion: number;
  /** Log position of the last event. */
  position: bigint;
}

/**
 * What a reader does with a poison message (docs/architecture.md, "Events and the store"): it is
 * always skipped; by default the store records it once (MessageQuarantined in
 * `deadletter-quarantine-<sequence>`), and `onPoison` hears of each one either way.
 */
export interface PoisonOptions {
  /** 'record' (default): write the quarantine record; 'report': only call onPoison (readers that must not write, e.g. the audit). */
  quarantine?: 'record' | 'report';
  /** Called once per poison message this read skips, before the read goes on. */
  onPoison?: (poison: PoisonMessage) => void;
}

export interface SubscriptionOptions extends PoisonOptions {
  /** Deliver events with position strictly greater than this checkpoint (0n = from the start). */
  after: bigint;
  /** Only events of these categories; undefined = all. */
  categories?: string[];
}

export interface Subscription {
  /** Position of the last event the handler finished (or of the last poison message skipped after it). */
  readonly position: bigint;
  stop(): Promise<void>;
  /** Resolves when the subscription stops; rejects if it stopped because of an error. */
  readonly done: Promise<void>;
}

export type EventHandler = (event: RecordedEvent) => Promise<void> | void;

/** Upper bound on one read so a reader can't pull an unbounded log into memory in one call. */
export const READ_BATCH_MAX = 10_000;

export interface ReadAllOptions extends PoisonOptions {
  /** First position to return (inclusive). Positions start at 1. */
  from: bigint;
  /** At most this many events (default and ceiling READ_BATCH_MAX). */
  limit?: number;
}

/**
 * The event store port. Adapters: JetStream (embedded default) and KurrentDB. Both pass the same
 * contract suite in libs/eventstore/test/contract.ts.
 */
export interface EventStore {
  readonly name: string;
  append(stream: string, events: NewEvent[], expectedVersion: ExpectedVersion): Promise<AppendResult>;
  /**
   * Events of one stream from `fromRevision` (inclusive); [] for a stream that doesn't exist.
   * Revisions increase; a gap is allowed only where explained (a deleted or quarantined message).
   */
  read(stream: string, fromRevision?: number): Promise<RecordedEvent[]>;
  /**
   * Events of the whole log in position order (without `traceparent`: replays don't need it), at
   * most `limit`; poison and deleted messages are skipped, so positions may have explained gaps, and
   * [] means nothing valid is left up to the head.
   */
  readAll(options: ReadAllOptions): Promise<RecordedEvent[]>;
  /** Position of the last event in the log (0n when empty). */
  headPosition(): Promise<bigint>;
  /** Live, ordered delivery from a checkpoint; survives reconnects. One handler call at a time. */
  subscribe(options: SubscriptionOptions, handler: EventHandler): Subscription;
  close(): Promise<void>;
}

/**
 * Walks the whole log in bounded batches (readAll pages), e.g. for replays and rebuilds. The next
 * page is requested while the caller works through the current one, so the server's reading and
 * the caller's work overlap; at most two pages are held at once.
 */
export async function* readAllPaged(store: EventStore, from = 1n, pageSize = 1000, poison: PoisonOptions = {}): AsyncGenerator<RecordedEvent> {
  for await (const page of readAllPages(store, from, pageSize, poison)) yield* page;
}

/**
 * readAllPaged a page at a time (each non-empty, in log order, ending at the head position read at
 * the start): for loops over the whole log that would otherwise pay an async step per event.
 */
export async function* readAllPages(store: EventStore, from = 1n, pageSize = 1000, poison: PoisonOptions = {}): AsyncGenerator<readonly RecordedEvent[]> {
  const head = await store.headPosition();
  const fetchFrom = (position: bigint) => {
    if (position > head) return undefined;
    const page = store.readAll({ ...poison, from: position, limit: pageSize });
    page.catch(() => undefined); // a caller that stops early never awaits it; errors surface below otherwise
    return page;
  };
  let pending = fetchFrom(from);
  while (pending) {
    const page = await pending;
    if (page.length === 0) return;
    pending = fetchFrom(page[page.length - 1].position + 1n);
    if (page[page.length - 1].position <= head) {
      yield page;
      continue;
    }
    const upToHead = page.filter((event) => event.position <= head);
    if (upToHead.length > 0) yield upToHead;
    return;
  }
}
