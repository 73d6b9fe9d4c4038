import { hashOfWalletEventBody, walletEventBody } from '@mesh/audit/hash';
import { walletMacProblem, type MacKeyRing, type MacTrail } from '@mesh/audit/mac';
import { KeyedMutex, LRUCache, retry } from '@mesh/common';
import { CREDIT_BATCH_MAX, creditedChargesOf, isEventOf, streamName, walletEvents, type NewEvent } from '@mesh/contracts';
import { ConcurrencyError } from '@mesh/eventstore/errors';
import type { EventStore } from '@mesh/eventstore/port';
import { InvariantError, WalletIntegrityError } from './domain/invariant';
import {
  evolveWallet,
  decideWallet,
  initialWalletState,
  type CreditCharge,
  type IdentifiedWalletEvent,
  type WalletCommand,
  type WalletState,
} from './domain/wallet';

/** Beyond this many conflicts in a row a command fails instead of spinning. */
const CONFLICT_RETRIES_MAX = 10;

export interface WalletResult {
  state: WalletState;
  /** Events this command wrote; empty for an idempotent no-op. */
  events: IdentifiedWalletEvent[];
  position?: bigint;
}

interface Cached {
  state: WalletState;
}

/** The members of a wallet's state that are fixed by its WalletOpened (see WalletHandler.facts). */
export type WalletFacts = Pick<WalletState, 'opened' | 'walletId' | 'kind' | 'currency' | 'tenantId'>;

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
 * Commands on one wallet run one at a time (a KeyedMutex per wallet) so they never race each
 * other in this process. The cache is bounded: the least recently used wallet is dropped (and
 * reloaded from its stream when needed again).
 *
 * Usage credits are group-committed (`credit`): every charge credits the provider wallet, so its
 * stream is the hot one, and appends to one stream wait for each other's acknowledgements. The
 * charges that arrive while one credit is being appended are written together as the next
 * UsageCredited (at most CREDIT_BATCH_MAX each), so the provider stream costs one round trip per
 * batch instead of one per charge.
 */
export class WalletHandler {
  private readonly cache: LRUCache<string, Cached>;
  private readonly mutex = new KeyedMutex();
  /** The batch still open for more credits, per provider wallet. */
  private readonly openCredits = new Map<string, CreditBatch>();

  constructor(
    private readonly store: EventStore,
    cacheMax = 10_000,
    private macKeys?: MacKeyRing,
  ) {
    this.cache = new LRUCache({ max: cacheMax });
  }

  /**
   * From now on every event written carries the MAC of the ring's active key, and every stream
   * loaded must pass the MAC rule (walletMacProblem). Wallets already cached were loaded without
   * the check: they are dropped, so each is checked when next used.
   */
  useMacKeys(ring: MacKeyRing): void {
    this.macKeys = ring;
    this.cache.clear();
  }

  execute(command: WalletCommand): Promise<WalletResult> {
    return this.mutex.run(command.walletId, () => this.run(command));
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
        // Runs after whatever is queued on this wallet now: the batch fills until then. flushCredits
        // never throws: a failure rejects every charge of the batch (each caller naks its own).
        void this.mutex.run(walletId, () => this.flushCredits(walletId, opened));
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

  /**
   * What never changes once a wallet is opened (its kind, currency and owner), without queueing
   * behind the wallet's commands when the wallet is in memory and opened: postCharge checks both
   * sides of every charge, and the provider wallet nearly always has a credit being appended, so
   * waiting for its mutex cost each charge a round trip. A wallet not in memory, or not opened, is
   * read through state() (in order behind its commands, loaded and checked if needed).
   */
  facts(walletId: string): Promise<WalletFacts> {
    const hit = this.cache.get(walletId);
    return hit?.state.opened ? Promise.resolve(hit.state) : this.state(walletId);
  }

  /** Current state (from memory or the stream), for replies; undefined state.opened means unknown. */
  state(walletId: string): Promise<WalletState> {
    return this.mutex.run(walletId, async () => (await this.load(walletId)).state);
  }

  forget(walletId?: string): void {
    if (walletId === undefined) this.cache.clear();
    else this.cache.delete(walletId);
  }

  get size(): number {
    return this.cache.size;
  }

  /**
   * Decides on the cached state and appends with its revision. A ConcurrencyError (another writer)
   * drops the cached state and the command runs again on a reload, at most CONFLICT_RETRIES_MAX
   * times; any other failure is rethrown as it is.
   */
  private run(command: WalletCommand): Promise<WalletResult> {
    const stream = streamName('wallet', command.walletId);
    return retry(
      `${stream} ${command.type}`,
      async () => {
        const cached = await this.load(command.walletId);
        const events = decideWallet(command, cached.state);
        if (events.length === 0) return { state: cached.state, events };
        if (this.macKeys) for (const event of events) this.seal(event, this.macKeys);
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
          throw err;
        }
      },
      { attempts: CONFLICT_RETRIES_MAX + 1, baseDelayMs: 1, maxDelayMs: 100, retryable: (err) => err instanceof ConcurrencyError },
    );
  }

  /** Adds the MAC of a decided event (a fresh object of this command) under the active key. */
  private seal(event: IdentifiedWalletEvent, ring: MacKeyRing): void {
    const { mac, macKeyId } = ring.sign(walletEventBody(event.type, event.data, event.data.prevHash));
    event.data.mac = mac;
    event.data.macKeyId = macKeyId;
  }

  /**
   * The wallet's state from memory, or folded from its stream. Each event read is checked before it
   * is applied: revisions contiguous, seals intact (checkSeals); the first that fails stops the
   * load with an error naming it, so a forged event is never applied.
   */
  private async load(walletId: string): Promise<Cached> {
    const hit = this.cache.get(walletId);
    if (hit) return hit;
    const stream = streamName('wallet', walletId);
    let state = initialWalletState();
    const trail: MacTrail = { macSeen: false };
    for (const event of await this.store.read(stream)) {
      if (event.revision !== state.revision + 1) throw new InvariantError(`${stream}: revision ${event.revision} follows ${state.revision}`);
      if (!isEventOf(event, walletEvents)) throw new InvariantError(`${stream}@${event.revision}: ${event.type} is not a wallet event`);
      checkSealsOf(this.macKeys, stream, event, state.lastHash, trail);
      state = evolveWallet(state, event);
    }
    const cached = { state };
    this.cache.set(walletId, cached);
    return cached;
  }
}

/**
 * The seals of one stored wallet event: its prevHash links to the previous event, its stored hash
 * matches its content, and (with a key ring) its MAC passes the rule of walletMacProblem.
 */
function checkSealsOf(
  ring: MacKeyRing | undefined,
  stream: string,
  event: IdentifiedWalletEvent & { revision: number; position: bigint },
  lastHash: string,
  trail: MacTrail,
): void {
  const fail = (problem: string) => new WalletIntegrityError(stream, event.revision, event.id, problem);
  if (event.data.prevHash !== lastHash) throw fail('does not link to the previous event (prevHash differs from its hash)');
  const body = walletEventBody(event.type, event.data, event.data.prevHash);
  if (event.data.hash !== undefined && event.data.hash !== hashOfWalletEventBody(body)) throw fail('has a stored hash that does not match its content');
  if (!ring) return;
  const problem = walletMacProblem(ring, trail, body, event.data, event.position);
  if (problem) throw fail(problem);
}

function toNew(event: IdentifiedWalletEvent): NewEvent {
  return { id: event.id, type: event.type, data: event.data };
}
