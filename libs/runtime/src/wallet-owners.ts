import { LRUCache } from '@mesh/common';
import { OPERATOR_OWNER, WalletOpened, isEvent, streamName, type EventData } from '@mesh/contracts';
import type { EventStore } from '@mesh/eventstore/port';

/** What a service needs to know of a wallet to let a caller act on it: who owns it, and its kind. */
export interface WalletOwner {
  walletId: string;
  /** The tenant id of WalletOpened.data.tenantId, or `operator` when the event names none. */
  owner: string;
  kind: 'user' | 'provider';
}

/** Wallets remembered per process by default (one entry is a few dozen bytes). */
export const WALLET_OWNERS_CACHED_MAX = 100_000;

/** The owner a WalletOpened records (absent: the operator's wallet). */
export const walletOwnerOf = (opened: Pick<EventData<typeof WalletOpened>, 'walletId' | 'kind' | 'tenantId'>): WalletOwner => ({
  walletId: opened.walletId,
  owner: opened.tenantId ?? OPERATOR_OWNER,
  kind: opened.kind,
});

/**
 * The owner of each wallet, learnt from the wallet's first event (WalletOpened, written by the
 * ledger with the opener's tenant id) and remembered in a bounded LRU: ownership never changes, so
 * a cached answer is never stale. Shared by the scheduler and the credit-manager, which both check
 * that a tenant names only its own wallets.
 *
 * A miss reads the wallet stream from the store (the port has no "first event only" read, so a long
 * wallet is read whole, once per process while it stays cached). An unknown wallet is not cached:
 * it may be opened a moment later.
 */
export class WalletOwners {
  /** In-flight and settled look-ups: concurrent misses on one wallet share one read. */
  private readonly cache: LRUCache<string, Promise<WalletOwner | undefined>>;

  constructor(
    private readonly store: Pick<EventStore, 'read'>,
    cachedMax = WALLET_OWNERS_CACHED_MAX,
  ) {
    this.cache = new LRUCache({ max: cachedMax });
  }

  /** The wallet's owner and kind; undefined when no WalletOpened was recorded for it. */
  lookup(walletId: string): Promise<WalletOwner | undefined> {
    const cached = this.cache.get(walletId);
    if (cached) return cached;
    const loading = this.load(walletId);
    this.cache.set(walletId, loading);
    // Neither a failure nor "not opened yet" is remembered: the next look-up reads again.
    loading.then(
      (found) => found === undefined && this.forget(walletId, loading),
      () => this.forget(walletId, loading),
    );
    return loading;
  }

  /** Remembers a WalletOpened seen anyway (e.g. by a subscription), so its look-up needs no read. */
  remember(opened: Pick<EventData<typeof WalletOpened>, 'walletId' | 'kind' | 'tenantId'>): void {
    if (!this.cache.has(opened.walletId)) this.cache.set(opened.walletId, Promise.resolve(walletOwnerOf(opened)));
  }

  private forget(walletId: string, loading: Promise<WalletOwner | undefined>): void {
    if (this.cache.peek(walletId) === loading) this.cache.delete(walletId);
  }

  private async load(walletId: string): Promise<WalletOwner | undefined> {
    const [first] = await this.store.read(streamName('wallet', walletId));
    return first && isEvent(first, WalletOpened) ? walletOwnerOf(first.data) : undefined;
  }
}
