import { Logger } from '@nestjs/common';
import { LRUCache, retry } from '@mesh/common';
import {
  currencyOf,
  isEvent,
  isEventOf,
  parseAmount,
  parseStreamName,
  StandingChanged,
  streamName,
  walletEvents,
  type RecordedEvent,
  type RecordedWalletEvent,
  type WalletEvent,
} from '@mesh/contracts';
import { ConcurrencyError } from '@mesh/eventstore/errors';
import type { EventStore, ExpectedVersion } from '@mesh/eventstore/port';
import { standingEventIdOf } from './domain/event-ids';
import {
  decideStanding,
  evolveStanding,
  initialStandingState,
  type ObserveBalance,
  type StandingState,
  type WalletPolicyMinor,
} from './domain/standing-decider';

const APPEND_RETRIES_MAX = 5;

/** The wallet's policy as the ledger's events state it. */
interface WalletPolicyView extends WalletPolicyMinor {
  walletId: string;
  kind: 'user' | 'provider';
  currency: string;
}

/** What the credit-manager knows of one wallet: all of it from the ledger's events, nothing computed. */
interface WalletView extends WalletPolicyView {
  /** Highest wallet revision whose balance has been applied. */
  seenRevision: number;
  standing: StandingState;
  /** Revision of the last event of `standing-<walletId>`; -1 for none. */
  standingVersion: number;
}

/** Folds WalletOpened / WalletPolicyChanged into the view's policy (the only events that carry it). */
function withPolicy<T extends WalletPolicyView>(view: T, event: WalletEvent): T {
  if (event.type !== 'WalletOpened' && event.type !== 'WalletPolicyChanged') return view;
  const data = event.data;
  const currency = currencyOf(data.currency);
  return {
    ...view,
    ...(event.type === 'WalletOpened' ? { kind: event.data.kind } : {}),
    currency: data.currency,
    maxDebtMinor: parseAmount(data.maxDebt, currency, { allowZero: true, field: 'maxDebt' }),
    minBalanceMinor: parseAmount(data.minBalance, currency, { allowZero: true, field: 'minBalance' }),
    policy: data.policy,
  };
}

function foldStanding(events: RecordedEvent[]): { state: StandingState; version: number } {
  let state = initialStandingState();
  for (const e of events) if (isEvent(e, StandingChanged)) state = evolveStanding(state, e);
  return { state, version: events.length ? events[events.length - 1].revision : -1 };
}

function balanceOf(event: WalletEvent, currency: string): bigint {
  return parseAmount(event.data.balanceAfter, currencyOf(currency), { allowNegative: true, allowZero: true });
}

/**
 * Keeps each user wallet's standing from the ledger's balance events, straight in the handler.
 * The wallet view (policy, last applied revision, standing) is cached; on a miss it is rebuilt
 * from the wallet stream (the ledger's log) and the standing stream, and the standing is decided
 * from the wallet's latest event, so a restart never acts on a stale balance.
 */
export class StandingHandler {
  private readonly log = new Logger('Standing');
  private readonly wallets: LRUCache<string, WalletView>;

  constructor(
    private readonly store: EventStore,
    walletsMax: number,
    private readonly now: () => number = Date.now,
  ) {
    this.wallets = new LRUCache({ max: walletsMax });
  }

  /**
   * Applies one wallet event. A conflict on the standing stream (another writer) drops the cached
   * view and the event is applied again on a reload, at most APPEND_RETRIES_MAX times; then, like
   * any other failure, it propagates and the consumer naks the event (redelivered later).
   */
  async onWalletEvent(event: RecordedWalletEvent): Promise<void> {
    const walletId = parseStreamName(event.stream).id;
    await retry(
      `standing-${walletId} after ${event.id}`,
      async () => {
        const cached = this.wallets.get(walletId);
        try {
          if (!cached) {
            await this.load(walletId);
            return;
          }
          if (event.revision <= cached.seenRevision) return; // stale, redelivered or covered by a load
          const view = withPolicy(cached, event);
          await this.observe(view, { eventId: event.id, revision: event.revision, balanceMinor: balanceOf(event, view.currency) });
        } catch (err) {
          this.wallets.delete(walletId);
          throw err;
        }
      },
      {
        attempts: APPEND_RETRIES_MAX + 1,
        baseDelayMs: 1,
        maxDelayMs: 100,
        retryable: (err) => err instanceof ConcurrencyError,
        onRetry: () => this.log.warn(`standing-${walletId}: conflict, reloading`),
      },
    );
  }

  /** Rebuilds the view from the log and decides on the wallet's latest balance. */
  private async load(walletId: string): Promise<void> {
    const [walletLog, standingLog] = await Promise.all([this.store.read(streamName('wallet', walletId)), this.store.read(streamName('standing', walletId))]);
    const history = walletLog.filter((e) => isEventOf(e, walletEvents));
    if (history.length === 0) return; // not possible for a delivered wallet event, unless the log was cut
    let policy: WalletPolicyView = { walletId, kind: 'user', currency: 'GRC', maxDebtMinor: 0n, minBalanceMinor: 0n, policy: 'greedy' };
    for (const e of history) policy = withPolicy(policy, e);
    const standing = foldStanding(standingLog);
    const head = history[history.length - 1];
    const view: WalletView = { ...policy, seenRevision: standing.state.causeRevision, standing: standing.state, standingVersion: standing.version };
    await this.observe(view, { eventId: head.id, revision: head.revision, balanceMinor: balanceOf(head, view.currency) });
  }

  /** Decides on one balance; the view is cached (with the new revision) only once the change is recorded. */
  private async observe(view: WalletView, at: { eventId: string; revision: number; balanceMinor: bigint }): Promise<void> {
    const command: ObserveBalance = {
      type: 'ObserveBalance',
      walletId: view.walletId,
      kind: view.kind,
      currency: view.currency,
      balanceMinor: at.balanceMinor,
      maxDebtMinor: view.maxDebtMinor,
      minBalanceMinor: view.minBalanceMinor,
      policy: view.policy,
      eventId: at.eventId,
      revision: at.revision,
      atMs: this.now(),
    };
    const decided = decideStanding(command, view.standing);
    let next: WalletView = { ...view, seenRevision: Math.max(view.seenRevision, at.revision) };
    if (decided.length > 0) {
      const expected: ExpectedVersion = view.standingVersion < 0 ? 'no_stream' : view.standingVersion;
      const result = await this.store.append(
        streamName('standing', view.walletId),
        decided.map((e) => ({ id: standingEventIdOf(e.data.walletId, e.data.causeRevision), type: e.type, data: e.data })),
        expected,
      );
      let standing = view.standing;
      for (const e of decided) standing = evolveStanding(standing, e);
      next = { ...next, standing, standingVersion: result.nextExpectedVersion };
    }
    this.wallets.set(view.walletId, next);
  }
}
