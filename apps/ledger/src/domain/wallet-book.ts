import { streamName, type NewEvent } from '@mesh/contracts';
import { ConcurrencyError } from '@mesh/eventstore/errors';
import type { EventStore } from '@mesh/eventstore/port';
import { evolveWallet, decideWallet, initialWalletState, type WalletCommand, type WalletEvent, type WalletState } from './wallet';

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

/**
 * Runs wallet commands: decide on the in-memory state of the wallet (loaded once from its stream),
 * append with the expected revision, fold the result in. The ledger is the single writer of the
 * `wallet` category, so the cached state is normally current; a ConcurrencyError (another writer,
 * e.g. a second ledger replica during a rollout) drops it and the command runs again on a reload.
 * Commands on one wallet run one at a time (a promise chain per wallet) so they never race each
 * other in this process. The cache is bounded: the least recently used wallet is dropped (and
 * reloaded from its stream when needed again).
 */
export class WalletBook {
  private readonly cache = new Map<string, Cached>();
  private readonly queues = new Map<string, Promise<unknown>>();

  constructor(
    private readonly store: EventStore,
    private readonly cacheMax = 10_000,
  ) {}

  execute(command: WalletCommand): Promise<WalletResult> {
    return this.serialized(command.walletId, () => this.run(command));
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
