import { CREDIT_BATCH_MAX, creditedChargesOf, streamName, type NewEvent } from '@mesh/contracts';
import { ConcurrencyError } from '@mesh/eventstore/errors';
import type { EventStore } from '@mesh/eventstore/port';
import { evolveWallet, decideWallet, initialWalletState, type CreditCharge, type WalletCommand, type WalletEvent, type WalletState } from './wallet';

/** Beyond this many conflicts in a row a command fails instead of spinning. */
const CONFLICT_RETRIES_MAX = 10;

export interface WalletResult {
  state: WalletState;
  /** Events this command wrote; empty for an idempotent no-op. */
  events: WalletEvent[];
  position?: bigint;
}

interface Cached {
  state: WalletState;
}

/** Credits waiting for the next append to their provider wallet (group commit). */
interface CreditBatch {
  currency: string;
  items: Array<{ charge: CreditCharge; resolve: (credited: boolean) => void; reject: (err: unknown) => void }>;
}

/**
 * Runs wallet commands: decide on the in-memory state of the wallet (loaded once from its stream),
 * append with the expected revision, fold the result in. The ledger is the single writer of the
 * `wallet` category, so the cached state is normally current; a ConcurrencyError (another writer,
 * e.g. a second ledger replica during a rollout) drops it and the command runs again on a reload.
 * Commands on one wallet run one at a time (a promise chain per wallet) so they never race each
 * other in this process. The cache is bounded: the least recently used wallet is dropped (and
 * reloaded from its stream when needed again).
 *
 * Usage credits are group-committed (`credit`): every charge credits the provider wallet, so its
 * stream is the hot one, and appends to one stream wait for each other's acknowledgements. The
 * charges that arrive while one credit is being appended are written together as the next
 * UsageCredited (at most CREDIT_BATCH_MAX each), so the provider stream costs one round trip per
 * batch instead of one per charge.
 */
export class WalletBook {
  private readonly cache = new Map<string, Cached>();
  private readonly queues = new Map<string, Promise<unknown>>();
  /** The batch still open for more credits, per provider wallet. */
  private readonly openCredits = new Map<string, CreditBatch>();

  constructor(
    private readonly store: EventStore,
    private readonly cacheMax = 10_000,
  ) {}

  execute(command: WalletCommand): Promise<WalletResult> {
    return this.serialized(command.walletId, () => this.run(command));
  }

  /**
   * Credits one charge to a provider wallet, together with the other charges waiting for it.
   * Resolves true when this call's event carried the charge, false when it was already posted
   * (or repeated in the batch, or zero); rejects when the batch could not be written (every
   * charge of the batch then stays unposted, and is posted when delivered again).
   */
  credit(walletId: string, currency: string, charge: CreditCharge): Promise<boolean> {
    return new Promise((resolve, reject) => {
      let batch = this.openCredits.get(walletId);
      if (!batch || batch.currency !== currency || batch.items.length >= CREDIT_BATCH_MAX) {
        const opened: CreditBatch = { currency, items: [] };
        batch = opened;
        this.openCredits.set(walletId, opened);
        // Runs after whatever is queued on this wallet now: the batch fills until then.
        void this.serialized(walletId, () => this.flushCredits(walletId, opened)).catch(() => undefined);
      }
      batch.items.push({ charge, resolve, reject });
    });
  }

  private async flushCredits(walletId: string, batch: CreditBatch): Promise<void> {
    if (this.openCredits.get(walletId) === batch) this.openCredits.delete(walletId); // closed: later credits open the next
    try {
      const result = await this.run({ type: 'PostCredits', walletId, currency: batch.currency, charges: batch.items.map((i) => i.charge) });
      const written = new Set<string>();
      for (const event of result.events) for (const c of creditedChargesOf(event.data)) written.add(c.chargeId);
      for (const item of batch.items) {
        item.resolve(written.delete(item.charge.chargeId)); // delete: a charge repeated in the batch is written once
      }
    } catch (err) {
      for (const item of batch.items) item.reject(err);
    }
  }

  /** Current state (from memory or the stream), for replies; undefined state.opened means unknown. */
  state(walletId: string): Promise<WalletState> {
    return this.serialized(walletId, async () => (await this.load(walletId)).state);
  }

  forget(walletId?: string): void {
    if (walletId === undefined) this.cache.clear();
    else this.cache.delete(walletId);
  }

  get size(): number {
    return this.cache.size;
  }

  private async run(command: WalletCommand): Promise<WalletResult> {
    const stream = streamName('wallet', command.walletId);
    for (let attempt = 0; ; attempt++) {
      const cached = await this.load(command.walletId);
      const events = decideWallet(command, cached.state);
      if (events.length === 0) return { state: cached.state, events };
      try {
        const result = await this.store.append(stream, events.map(toNew), cached.state.revision < 0 ? 'no_stream' : cached.state.revision);
        let state = cached.state;
        for (const event of events) state = evolveWallet(state, event);
        if (result.nextExpectedVersion !== state.revision) {
          // The store found these events already written further on (an earlier, interrupted
          // attempt): our view is stale, reload before the next command.
          this.cache.delete(command.walletId);
        } else {
          cached.state = state;
        }
        return { state, events, position: result.position };
      } catch (err) {
        this.cache.delete(command.walletId);
        if (!(err instanceof ConcurrencyError) || attempt >= CONFLICT_RETRIES_MAX) throw err;
      }
    }
  }

  private async load(walletId: string): Promise<Cached> {
    const hit = this.cache.get(walletId);
    if (hit) {
      // Refresh its place in the LRU order.
      this.cache.delete(walletId);
      this.cache.set(walletId, hit);
      return hit;
    }
    const history = await this.store.read(streamName('wallet', walletId));
    let state = initialWalletState();
    for (const event of history) state = evolveWallet(state, event);
    const cached = { state };
    if (this.cache.size >= this.cacheMax) this.cache.delete(this.cache.keys().next().value as string);
    this.cache.set(walletId, cached);
    return cached;
  }

  private serialized<T>(walletId: string, job: () => Promise<T>): Promise<T> {
    const previous = this.queues.get(walletId) ?? Promise.resolve();
    const next = previous.then(job, job);
    const tail = next.catch(() => undefined);
    this.queues.set(walletId, tail);
    void tail.then(() => {
      if (this.queues.get(walletId) === tail) this.queues.delete(walletId);
    });
    return next;
  }
}

function toNew(event: WalletEvent): NewEvent {
  return { id: event.id, type: event.type, data: event.data };
}
