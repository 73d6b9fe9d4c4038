import {
  creditedChargesOf,
  currencyOf,
  formatAmount,
  isEvent,
  isEventOf,
  parseAmount,
  UsageCharged,
  UsageCredited,
  walletEvents as walletEventDefinitions,
  type AuditInvariant,
  type AuditReport,
} from '@mesh/contracts';
import type { PoisonMessage } from '@mesh/eventstore/poison';
import { setTimeout as sleep } from 'node:timers/promises';
import { readAllPages, type EventStore } from '@mesh/eventstore/port';
import { balanceDelta } from './balance';
import { GENESIS_HASH, hashOfWalletEventBody, walletEventBody } from './hash';
import { walletMacProblem, type MacKeyRing, type MacTrail } from './mac';

export type { AuditReport };

/** What the audit needs of a projection: the balance and revision of each wallet it reflects. */
export interface ProjectionSnapshotSource {
  snapshot(): { position: bigint; balances: Map<string, { revision: number; balance: bigint }> };
}

export interface VerifyOptions {
  /** Events per readAll page (bounded memory per page; default AUDIT_PAGE_SIZE). */
  pageSize?: number;
  /** Violations quoted per invariant (the count is always complete). */
  examplesMax?: number;
  /** The ledger's MAC keys: with them `wallet-mac` is checked, without them it is skipped (and said so). */
  macKeys?: MacKeyRing;
  /**
   * How long to wait for the credits of debits found without one at the end of the replay (0, the
   * default: none). The ledger writes a charge's debit, then its credit: on a live log the last
   * debits read may have their credit written a moment after the head the replay stopped at. Those
   * credits, read past the end, complete their charges; any other event after the end is left to
   * the next audit.
   */
  creditGraceMs?: number;
}

/** Pause between reads of the log's new tail while waiting for credits (creditGraceMs). */
const CREDIT_GRACE_POLL_MS = 100;

/**
 * Events per page of the replay. Small on purpose: the events of a page (and of the next, read
 * meanwhile) live until the page is done, and with 10 000 they outlived the young generation, so
 * the garbage collector copied and promoted every one (GC time per event several times the raw
 * read's, measured; see BENCHMARKS.md); with 1 000 most die young. The per-page round trips
 * overlap the work (readAllPages reads ahead).
 */
export const AUDIT_PAGE_SIZE = 1_000;

interface Chain extends MacTrail {
  opened: boolean;
  revision: number;
  lastHash: string;
  balance: bigint;
}

interface Posting {
  amount: bigint;
  walletId: string;
  counterparty: string;
  position: bigint;
}

/** Everything the log says about one charge id: its first UsageCharged, debit and credit (one map lookup per event instead of one per book). */
interface ChargeEntry {
  chargeId: string;
  charge?: { amount: bigint; walletId: string; providerWalletId: string };
  debit?: Posting;
  credit?: Posting;
}

/** The invariants in report order, with the sentence each one checks. */
const INVARIANTS = {
  'events-valid':
    'every message on an event subject is a valid event: its type is known and its data matches the schema (poison, skipped by every reader, is listed here until it is deleted from the log; the store checks each event read, the audit reads only what passed)',
  'books-balance': 'sum of all usage debits == sum of all usage credits',
  'charges-paired': 'every charge posted as a debit has its credit (same amount, matching wallets) and vice versa',
  'no-double-posting': 'no charge is debited or credited more than once',
  'postings-have-causes': 'every usage posting has its UsageCharged (same amount and wallets); every posting follows its WalletOpened',
  'balances-derive': "every event's balanceAfter == previous balance + its amount, revisions dense",
  'hash-chain': "every wallet event's prevHash is the hash of the previous event, and its stored hash matches its content",
  'wallet-mac': "every wallet event written since MACs began carries the ledger's valid MAC (a forged event names itself here)",
  'money-conserved': 'sum of all balances == deposits - withdrawals + adjustments',
  'projection-matches': "every balance re-derived from the log equals the projection's",
} as const;
type InvariantName = keyof typeof INVARIANTS;

/**
 * Replays the whole log from position 1 (bounded pages), re-derives every wallet balance and checks
 * the invariants above. Pure apart from reading the store: it writes nothing. With a projection,
 * its snapshot is taken first and each wallet's re-derived balance is compared at the revision the
 * projection reflects, so a projection that moves on during the replay is still compared exactly.
 */
export async function verifyAudit(store: EventStore, projection?: ProjectionSnapshotSource, options: VerifyOptions = {}): Promise<AuditReport> {
  const started = process.hrtime.bigint();
  const examplesMax = options.examplesMax ?? 5;
  const snapshot = projection?.snapshot();
  const violations = new Map<InvariantName, { count: number; examples: string[] }>(
    (Object.keys(INVARIANTS) as InvariantName[]).map((name) => [name, { count: 0, examples: [] }]),
  );
  const violate = (name: InvariantName, detail: string) => {
    const v = violations.get(name)!;
    v.count++;
    if (v.examples.length < examplesMax) v.examples.push(detail);
  };
  let firstBrokenLink: AuditReport['firstBrokenLink'];
  // Where an event is, for a finding: built only when one is reported (no closure per event of the log).
  const at = (event: { stream: string; revision: number; id: string; position: bigint }) =>
    `${event.stream}@${event.revision} (${event.id}, position ${event.position})`;

  const chains = new Map<string, Chain>();
  const book = new Map<string, ChargeEntry>();
  const entryOf = (chargeId: string): ChargeEntry => {
    let entry = book.get(chargeId);
    if (!entry) {
      entry = { chargeId };
      book.set(chargeId, entry);
    }
    return entry;
  };
  // Debits and credits in log order (the order their findings are reported in), and the charges seen.
  const debits: ChargeEntry[] = [];
  const credits: ChargeEntry[] = [];
  let charges = 0;
  const totals = { debited: 0n, credited: 0n, deposited: 0n, withdrawn: 0n, adjusted: 0n };
  let events = 0;
  let walletEvents = 0;
  let lastPosition = 0n;
  const compared = new Set<string>();

  // The audit writes nothing: poison is reported by the store (never recorded from here) and listed as a finding.
  const onPoison = (poison: PoisonMessage) => violate('events-valid', poison.toString());
  // Page by page (an async step per page, not per event: this loop runs once per event of the whole log).
  for await (const page of readAllPages(store, 1n, options.pageSize ?? AUDIT_PAGE_SIZE, { quarantine: 'report', onPoison })) {
    for (const event of page) {
      events++;
      lastPosition = event.position;
      // The store hands over only events whose data passes their type's schema (decodeMessage on
      // every read; poison is skipped and reported above as events-valid), so the typed guards are
      // enough here: the data is not parsed a second time.
      if (isEvent(event, UsageCharged)) {
        const d = event.data;
        const entry = entryOf(d.chargeId);
        if (!entry.charge) {
          charges++;
          entry.charge = {
            amount: parseAmount(d.amount, currencyOf(d.currency), { allowZero: true }),
            walletId: d.walletId,
            providerWalletId: d.providerWalletId,
          };
        }
        continue;
      }
      if (!event.stream.startsWith('wallet-')) continue;
      walletEvents++;
      let chain = chains.get(event.stream);
      if (!chain) {
        chain = { opened: false, revision: -1, lastHash: GENESIS_HASH, balance: 0n, macSeen: false };
        chains.set(event.stream, chain);
      }

      // Hash chain over the data as stored (whatever it holds): the link to the previous event, then the event's own stored hash.
      const raw = isRecord(event.data) ? event.data : {};
      const body = walletEventBody(event.type, raw, raw.prevHash);
      const computed = hashOfWalletEventBody(body);
      const linkBroken = raw.prevHash !== chain.lastHash;
      const contentAltered = raw.hash !== undefined && raw.hash !== computed;
      if (linkBroken || contentAltered) {
        const detail = linkBroken
          ? `prevHash ${String(raw.prevHash).slice(0, 12)}... but the previous event hashes to ${chain.lastHash.slice(0, 12)}...`
          : `stored hash ${String(raw.hash).slice(0, 12)}... but the content hashes to ${computed.slice(0, 12)}...`;
        violate('hash-chain', `${at(event)}: ${detail}`);
        firstBrokenLink ??= { stream: event.stream, revision: event.revision, eventId: event.id, position: event.position.toString(), detail };
      }
      chain.lastHash = computed;
      if (options.macKeys) {
        const problem = walletMacProblem(options.macKeys, chain, body, raw, event.position);
        if (problem) violate('wallet-mac', `${at(event)}: ${problem}`);
      }
      if (event.revision !== chain.revision + 1) violate('balances-derive', `${at(event)}: revision ${event.revision} follows ${chain.revision}`);
      chain.revision = event.revision;

      if (!isEventOf(event, walletEventDefinitions)) {
        violate('events-valid', `${at(event)}: ${event.type} is not a wallet event type`);
        continue;
      }
      const typed = event;
      const data = typed.data;

      // Causes and balances.
      if (typed.type === 'WalletOpened') {
        if (chain.opened) violate('postings-have-causes', `${at(event)}: wallet opened twice`);
        chain.opened = true;
      } else if (!chain.opened) {
        violate('postings-have-causes', `${at(event)}: ${event.type} before the wallet was opened`);
      }
      const currency = currencyOf(data.currency);
      const delta = balanceDelta(typed);
      const derived = chain.balance + delta;
      const recorded = parseAmount(data.balanceAfter, currency, { allowNegative: true, allowZero: true });
      if (recorded !== derived)
        violate(
          'balances-derive',
          `${at(event)}: balanceAfter ${data.balanceAfter} but ${formatAmount(chain.balance, currency)} ${delta < 0n ? '-' : '+'} ${formatAmount(delta < 0n ? -delta : delta, currency)} = ${formatAmount(derived, currency)}`,
        );
      chain.balance = derived;

      switch (typed.type) {
        case 'FundsDeposited':
          totals.deposited += delta;
          break;
        case 'FundsWithdrawn':
          totals.withdrawn -= delta;
          break;
        case 'BalanceAdjusted':
          totals.adjusted += delta;
          if (!typed.data.reason) violate('postings-have-causes', `${at(event)}: adjustment without a reason`);
          break;
        case 'UsageDebited': {
          const amount = -delta;
          totals.debited += amount;
          const { chargeId, walletId, providerWalletId } = typed.data;
          const entry = entryOf(chargeId);
          if (entry.debit) violate('no-double-posting', `${at(event)}: charge ${chargeId} debited again (first at position ${entry.debit.position})`);
          else {
            entry.debit = { amount, walletId, counterparty: providerWalletId, position: event.position };
            debits.push(entry);
          }
          break;
        }
        case 'UsageCredited': {
          totals.credited += delta;
          // One credit may name several charges: each is paired on its own, and they must add up.
          let sum = 0n;
          for (const charge of creditedChargesOf(typed.data)) {
            const amount = parseAmount(charge.amount, currency, { allowZero: true });
            sum += amount;
            const entry = entryOf(charge.chargeId);
            if (entry.credit)
              violate('no-double-posting', `${at(event)}: charge ${charge.chargeId} credited again (first at position ${entry.credit.position})`);
            else {
              entry.credit = { amount, walletId: data.walletId, counterparty: charge.userWalletId, position: event.position };
              credits.push(entry);
            }
          }
          if (sum !== delta)
            violate('charges-paired', `${at(event)}: credit of ${formatAmount(delta, currency)} but its charges add up to ${formatAmount(sum, currency)}`);
          break;
        }
      }

      if (snapshot) {
        const seen = snapshot.balances.get(data.walletId);
        if (seen && seen.revision === event.revision) {
          compared.add(data.walletId);
          if (seen.balance !== derived)
            violate(
              'projection-matches',
              `wallet ${data.walletId}@${event.revision}: projection ${formatAmount(seen.balance, currency)}, log ${formatAmount(derived, currency)}`,
            );
        }
      }
    }
  }

  // Credits written after the end for debits the replay holds open (creditGraceMs): they complete
  // their charge, so a live ledger's audit never reports a charge half-posted that is in flight.
  const lateCredited = await completeOpenCharges(store, debits, lastPosition, options.creditGraceMs ?? 0);
  totals.credited += lateCredited;

  // Whole-log invariants.
  if (totals.debited !== totals.credited)
    violate(
      'books-balance',
      `debited ${formatAmount(totals.debited)} != credited ${formatAmount(totals.credited)} (difference ${formatAmount(totals.debited - totals.credited)})`,
    );
  for (const { chargeId, debit, credit } of debits) {
    const d = debit!;
    const c = credit;
    if (!c)
      violate('charges-paired', `charge ${chargeId}: debit of ${formatAmount(d.amount)} from ${d.walletId} has no credit (expected on ${d.counterparty})`);
    else if (c.amount !== d.amount || c.walletId !== d.counterparty || c.counterparty !== d.walletId)
      violate(
        'charges-paired',
        `charge ${chargeId}: debit ${formatAmount(d.amount)} ${d.walletId}->${d.counterparty} but credit ${formatAmount(c.amount)} ${c.counterparty}->${c.walletId}`,
      );
  }
  for (const { chargeId, credit, debit } of credits) {
    const c = credit!;
    if (!debit)
      violate('charges-paired', `charge ${chargeId}: credit of ${formatAmount(c.amount)} to ${c.walletId} has no debit (expected on ${c.counterparty})`);
  }
  for (const [entries, side] of [
    [debits, 'debit'],
    [credits, 'credit'],
  ] as const) {
    for (const { chargeId, charge, debit, credit } of entries) {
      const p = side === 'debit' ? debit! : credit!;
      const [user, provider] = side === 'debit' ? [p.walletId, p.counterparty] : [p.counterparty, p.walletId];
      if (!charge) violate('postings-have-causes', `charge ${chargeId}: ${side} at position ${p.position} has no UsageCharged in the log`);
      else if (charge.amount !== p.amount || charge.walletId !== user || charge.providerWalletId !== provider) {
        violate(
          'postings-have-causes',
          `charge ${chargeId}: ${side} ${formatAmount(p.amount)} ${user}->${provider} but UsageCharged says ${formatAmount(charge.amount)} ${charge.walletId}->${charge.providerWalletId}`,
        );
      }
    }
  }
  let balances = lateCredited;
  for (const chain of chains.values()) balances += chain.balance;
  const expected = totals.deposited - totals.withdrawn + totals.adjusted + totals.credited - totals.debited;
  if (balances !== totals.deposited - totals.withdrawn + totals.adjusted || balances !== expected) {
    violate(
      'money-conserved',
      `balances ${formatAmount(balances)} != deposits ${formatAmount(totals.deposited)} - withdrawals ${formatAmount(totals.withdrawn)} + adjustments ${formatAmount(totals.adjusted)}`,
    );
  }
  if (snapshot) {
    for (const [walletId, seen] of snapshot.balances) {
      if (!compared.has(walletId))
        violate('projection-matches', `wallet ${walletId}: projection is at revision ${seen.revision}, which the log does not reach`);
    }
  }

  const invariants: AuditInvariant[] = (Object.keys(INVARIANTS) as InvariantName[])
    .filter((name) => (name !== 'projection-matches' || snapshot) && (name !== 'wallet-mac' || options.macKeys))
    .map((name) => {
      const v = violations.get(name)!;
      return { name, description: INVARIANTS[name], pass: v.count === 0, violations: v.count, examples: v.examples };
    });
  const durationMs = Number(process.hrtime.bigint() - started) / 1e6;
  return {
    pass: invariants.every((i) => i.pass),
    fromPosition: '1',
    toPosition: lastPosition.toString(),
    events,
    walletEvents,
    wallets: [...chains.values()].filter((c) => c.opened).length,
    charges,
    debits: debits.length,
    credits: credits.length,
    totals: {
      debited: formatAmount(totals.debited),
      credited: formatAmount(totals.credited),
      deposited: formatAmount(totals.deposited),
      withdrawn: formatAmount(totals.withdrawn),
      adjusted: formatAmount(totals.adjusted),
      balances: formatAmount(balances),
    },
    invariants,
    ...(firstBrokenLink ? { firstBrokenLink } : {}),
    durationMs: Math.round(durationMs),
    eventsPerSecond: durationMs > 0 ? Math.round((events / durationMs) * 1000) : 0,
  };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The short human report printed by the CLI: counts, then PASS/FAIL per invariant. */
export function formatAuditReport(report: AuditReport): string {
  const lines = [
    `audit ${report.pass ? 'PASSED' : 'FAILED'}: log positions ${report.fromPosition}..${report.toPosition}, ${report.events} events (${report.walletEvents} wallet events) in ${report.durationMs} ms (${report.eventsPerSecond} events/s)`,
    `  wallets ${report.wallets}, charges ${report.charges}, debits ${report.debits}, credits ${report.credits}`,
    `  debited ${report.totals.debited}, credited ${report.totals.credited}, deposited ${report.totals.deposited}, withdrawn ${report.totals.withdrawn}, adjusted ${report.totals.adjusted}, balances ${report.totals.balances}`,
  ];
  for (const inv of report.invariants) {
    lines.push(
      `  ${inv.pass ? 'PASS' : 'FAIL'}  ${inv.name.padEnd(22)} ${inv.description}${inv.pass ? '' : ` (${inv.violations} violation${inv.violations === 1 ? '' : 's'})`}`,
    );
    for (const example of inv.examples) lines.push(`          - ${example}`);
  }
  if (!report.invariants.some((i) => i.name === 'wallet-mac')) {
    lines.push(
      `  SKIP  ${'wallet-mac'.padEnd(22)} no MAC key given (LEDGER_MAC_KEY_FILE or --mac-key): forged events with a correct hash chain are not detected`,
    );
  }
  if (report.firstBrokenLink) {
    const b = report.firstBrokenLink;
    lines.push(`  first broken link: ${b.stream} revision ${b.revision} (event ${b.eventId}, position ${b.position}): ${b.detail}`);
  }
  return lines.join('\n');
}

/**
 * Reads the log past `end` for the credits of the debits without one, until each has its credit or
 * `graceMs` has passed; records each found on its entry (position past the end) and returns their
 * sum. A credit naming other charges counts only for the open ones (the rest is the next audit's).
 */
async function completeOpenCharges(store: EventStore, debits: readonly ChargeEntry[], end: bigint, graceMs: number): Promise<bigint> {
  const open = new Map(debits.filter((e) => !e.credit).map((e) => [e.chargeId, e]));
  if (open.size === 0 || graceMs <= 0) return 0n;
  const deadlineMs = Date.now() + graceMs;
  let credited = 0n;
  let from = end + 1n;
  while (open.size > 0) {
    let read = 0;
    for await (const page of readAllPages(store, from, AUDIT_PAGE_SIZE, { quarantine: 'report' })) {
      for (const event of page) {
        read++;
        from = event.position + 1n;
        if (!event.stream.startsWith('wallet-') || !isEvent(event, UsageCredited)) continue;
        const { data } = event;
        for (const charge of creditedChargesOf(data)) {
          const entry = open.get(charge.chargeId);
          if (!entry) continue;
          const amount = parseAmount(charge.amount, currencyOf(data.currency), { allowZero: true });
          entry.credit = { amount, walletId: data.walletId, counterparty: charge.userWalletId, position: event.position };
          credited += amount;
          open.delete(charge.chargeId);
        }
      }
    }
    if (open.size === 0 || Date.now() >= deadlineMs) break;
    if (read === 0) await sleep(CREDIT_GRACE_POLL_MS);
  }
  return credited;
}
