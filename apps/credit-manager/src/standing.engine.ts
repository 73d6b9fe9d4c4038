import { Logger } from '@nestjs/common';
import { currencyOf, parseAmount, parseStreamName, streamName, type RecordedEvent } from '@mesh/contracts';
import { ConcurrencyError } from '@mesh/eventstore/errors';
import type { EventStore, ExpectedVersion } from '@mesh/eventstore/port';
import { standingEventIdOf } from './domain/event-ids';
import {
  decideStanding,
  evolveStanding,
  initialStandingState,
  type ObserveBalance,
  type StandingEvent,
  type StandingState,
  type WalletPolicyMinor,
} from './domain/standing-decider';
import { BoundedCache } from './lru';

const APPEND_RETRIES_MAX = 5;

/** What the credit-manager knows of one wallet: all of it from the ledger's events, nothing computed. */
interface WalletView extends WalletPolicyMinor {
  walletId: string;
  kind: 'user' | 'provider';
  currency: string;
  /** Highest wallet revision whose balance has been applied. */
  seenRevision: number;
  standing: StandingState;
  /** Revision of the last event of `standing-<walletId>`; -1 for none. */
  standingVersion: number;
}

interface WalletData {
  kind?: 'user' | 'provider';
  currency: string;
  balanceAfter: string;
  maxDebt?: string;
  minBalance?: string;
  policy?: 'greedy' | 'conservative';
}

/** Folds WalletOpened / WalletPolicyChanged into the view's policy (the only events that carry it). */
function withPolicy<T extends Partial<WalletView>>(view: T, type: string, data: WalletData): T {
  if (type !== 'WalletOpened' && type !== 'WalletPolicyChanged') return view;
  const currency = currencyOf(data.currency);
  return {
    ...view,
    ...(data.kind ? { kind: data.kind } : {}),
    currency: data.currency,
    maxDebtMinor: parseAmount(data.maxDebt, currency, { allowZero: true, field: 'maxDebt' }),
    minBalanceMinor: parseAmount(data.minBalance, currency, { allowZero: true, field: 'minBalance' }),
    policy: data.policy!,
  };
}

function foldStanding(events: RecordedEvent[]): { state: StandingState; version: number } {
  let state = initialStandingState();
  for (const e of events) if (e.type === 'StandingChanged') state = evolveStanding(state, e as unknown as StandingEvent);
  return { state, version: events.length ? events[events.length - 1].revision : -1 };
}

/**
 * Keeps each user wallet's standing from the ledger's balance events, straight in the handler.
 * The wallet view (policy, last applied revision, standing) is cached; on a miss it is rebuilt
 * from the wallet stream (the ledger's log) and the standing stream, and the standing is decided
 * from the wallet's latest event, so a restart never acts on a stale balance.
 */
export class StandingEngine {
  private readonly log = new Logger('Standing');
  private readonly wallets: BoundedCache<string, WalletView>;

  constructor(
    private readonly store: EventStore,
    walletsMax: number,
    private readonly now: () => number = Date.now,
  ) {
    this.wallets = new BoundedCache(walletsMax);
  }

  async onWalletEvent(event: RecordedEvent): Promise<void> {
    const walletId = parseStreamName(event.stream).id;
    for (let attempt = 0; ; attempt++) {
      const cached = this.wallets.get(walletId);
      try {
        if (!cached) {
          await this.load(walletId);
          return;
        }
        if (event.revision <= cached.seenRevision) return; // stale, redelivered or covered by a load
        const view = withPolicy(cached, event.type, event.data as WalletData);
        const balanceMinor = parseAmount((event.data as WalletData).balanceAfter, currencyOf(view.currency), { allowNegative: true, allowZero: true });
        await this.observe(view, { eventId: event.id, revision: event.revision, balanceMinor });
        return;
      } catch (err) {
        this.wallets.delete(walletId);
        if (!(err instanceof ConcurrencyError) || attempt >= APPEND_RETRIES_MAX) throw err;
        this.log.warn(`standing-${walletId}: conflict, reloading`);
      }
    }
  }

  /** Rebuilds the view from the log and decides on the wallet's latest balance. */
  private async load(walletId: string): Promise<void> {
    const [walletEvents, standingEvents] = await Promise.all([
      this.store.read(streamName('wallet', walletId)),
      this.store.read(streamName('standing', walletId)),
    ]);
    if (walletEvents.length === 0) return; // not possible for a delivered wallet event, unless the log was cut
    let view: Partial<WalletView> = { walletId, kind: 'user', currency: 'GRC', maxDebtMinor: 0n, minBalanceMinor: 0n, policy: 'greedy' };
    for (const e of walletEvents) view = withPolicy(view, e.type, e.data as WalletData);
    const standing = foldStanding(standingEvents);
    const head = walletEvents[walletEvents.length - 1];
    const full = { ...view, seenRevision: standing.state.causeRevision, standing: standing.state, standingVersion: standing.version } as WalletView;
    const balanceMinor = parseAmount((head.data as WalletData).balanceAfter, currencyOf(full.currency), { allowNegative: true, allowZero: true });
    await this.observe(full, { eventId: head.id, revision: head.revision, balanceMinor });
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
