import type { Logger } from '@nestjs/common';
import type { StatementLine } from '@mesh/contracts';
import { readAllPaged, type EventStore } from '@mesh/eventstore/port';
import { RecordReader, isSnapshotRecord } from '@mesh/eventstore/snapshot-records';
import { encodeSnapshot, type EncodedSnapshot, type SnapshotStore } from '@mesh/eventstore/snapshot-store';
import { UncreditedDebits, type OwedCredit } from '../domain/uncredited-debits';
import { LedgerProjection, type WalletView } from './ledger-projection';
import { STATEMENT_LIMIT_DEFAULT } from './queries';

/**
 * The ledger's snapshot (docs/ledger.md, "Start-up"): the projection and the debits still without
 * their credit, at one log position. Money is bigint in memory and decimal strings here. Records:
 * `head` (position, counters, totals), `w` (a wallet without its lines), `l` (statement lines of a
 * wallet, in order, at most LINE_BYTES_PER_RECORD of JSON per record; only the newest
 * STATEMENT_LINES_IN_SNAPSHOT of each wallet), `u` (an uncredited debit), `o` (the tenant owning a wallet).
 * The costs per task and container are not in it (since schema 2; schema 1 held them as `t` / `c`
 * records): they grow with the log, so a start from the snapshot would too; they are read back from
 * the wallet streams on demand (CostViews). Schema 3 added `o`. Fewer lines per wallet needed no new
 * schema: the records are the same, and an older snapshot's 2 000 lines are read right (only slower, once).
 */

/** Bump when the records change: an older snapshot is then ignored (full replay), never misread. */
export const LEDGER_SNAPSHOT_SCHEMA = 3;
/**
 * Statement lines per wallet in the snapshot: the newest ones, as many as a default statement
 * answer (STATEMENT_LIMIT_DEFAULT), so that one is served from memory right after a start. The
 * projection holds up to STATEMENT_LINES_IN_MEMORY while running; a start from the snapshot holds
 * these and older lines are read back from the wallet's stream (LedgerQueries.statement), exactly as
 * lines beyond the in-memory cap are. With 2 000 per wallet the snapshot was 87 MB at 1M events
 * (mostly lines: a provider's credit line lists up to 200 charges); its load dominated the start.
 */
export const STATEMENT_LINES_IN_SNAPSHOT = STATEMENT_LIMIT_DEFAULT;
/** JSON bytes of statement lines per record (a provider's credit line names up to 200 charges; a record must stay under a chunk). */
const LINE_BYTES_PER_RECORD = 128 * 1024;
const STATEMENT_CAUSES = ['open', 'deposit', 'withdrawal', 'adjustment', 'usage-debit', 'usage-credit', 'policy'] as const;

type Rec = Record<string, unknown>;
const WHAT = 'ledger snapshot';

function* recordsOf(projection: LedgerProjection, owed: OwedCredit[]): Generator<Rec> {
  const t = projection.totals;
  yield {
    k: 'head',
    position: projection.position.toString(),
    walletEvents: projection.walletEvents,
    totals: {
      deposited: t.deposited.toString(),
      withdrawn: t.withdrawn.toString(),
      adjusted: t.adjusted.toString(),
      debited: t.debited.toString(),
      credited: t.credited.toString(),
    },
  };
  for (const w of projection.wallets.values()) {
    yield {
      k: 'w',
      walletId: w.walletId,
      kind: w.kind,
      currency: w.currency,
      balance: w.balance.toString(),
      maxDebt: w.maxDebt.toString(),
      minBalance: w.minBalance.toString(),
      policy: w.policy,
      revision: w.revision,
      earned: w.earned.toString(),
      credits: w.credits,
    };
    let lines: StatementLine[] = [];
    let bytes = 0;
    for (const line of w.lines.slice(-STATEMENT_LINES_IN_SNAPSHOT)) {
      const size = JSON.stringify(line).length;
      if (lines.length > 0 && bytes + size > LINE_BYTES_PER_RECORD) {
        yield { k: 'l', walletId: w.walletId, lines };
        lines = [];
        bytes = 0;
      }
      lines.push(line);
      bytes += size;
    }
    if (lines.length > 0) yield { k: 'l', walletId: w.walletId, lines };
  }
  for (const debit of owed) yield { k: 'u', ...debit };
  for (const [walletId, tenantId] of projection.owners) yield { k: 'o', walletId, tenantId };
}

/** Encodes the projection and the uncredited debits at the projection's position (synchronous: one consistent cut). */
export function encodeLedgerSnapshot(projection: LedgerProjection, uncredited: UncreditedDebits): EncodedSnapshot {
  return encodeSnapshot(LEDGER_SNAPSHOT_SCHEMA, projection.position, recordsOf(projection, uncredited.list()));
}

/** A statement line as the projection wrote it (toStatementLine); the cause is kept as stored. */
function lineOf(value: unknown): StatementLine {
  const r = new RecordReader({ k: 'line', ...(isSnapshotRecord(value) ? value : {}) }, WHAT);
  const cause = r.record.cause;
  if (!isSnapshotRecord(cause)) throw r.error('cause', 'must be an object');
  new RecordReader({ k: 'line.cause', ...cause }, WHAT).oneOf('kind', STATEMENT_CAUSES);
  return {
    revision: r.int('revision'),
    position: r.str('position'),
    eventId: r.str('eventId'),
    type: r.str('type'),
    occurredAt: r.str('occurredAt'),
    amount: r.str('amount'),
    balanceAfter: r.str('balanceAfter'),
    // The cause's other fields depend on its kind: they are the projection's own output (toStatementLine),
    // checked whole by the snapshot's sha256; validating each with zod would make a start with millions of lines slow.
    cause: { ...cause } as StatementLine['cause'],
  };
}

/**
 * Rebuilds the projection and the uncredited debits from snapshot records into fresh objects;
 * throws (naming the record kind and field) on anything malformed.
 */
export function restoreLedgerSnapshot(records: unknown[]): { projection: LedgerProjection; uncredited: UncreditedDebits } {
  const projection = new LedgerProjection();
  // Costs older than the snapshot are not in it: a key's cost is read back from its wallet's stream before it is held again.
  projection.tasks.fromGenesis = false;
  projection.containers.fromGenesis = false;
  const uncredited = new UncreditedDebits();
  const head = RecordReader.of(records[0], WHAT);
  if (head.kind !== 'head') throw head.error('k', 'must be head in the first record');
  projection.position = head.big('position');
  projection.walletEvents = head.int('walletEvents');
  const totals = head.object('totals');
  for (const field of ['deposited', 'withdrawn', 'adjusted', 'debited', 'credited'] as const) projection.totals[field] = totals.big(field);
  for (const value of records.slice(1)) {
    const r = RecordReader.of(value, WHAT);
    switch (r.kind) {
      case 'w': {
        const wallet: WalletView = {
          walletId: r.str('walletId'),
          kind: r.oneOf('kind', ['user', 'provider'] as const),
          currency: r.str('currency'),
          balance: r.big('balance'),
          maxDebt: r.big('maxDebt'),
          minBalance: r.big('minBalance'),
          policy: r.oneOf('policy', ['greedy', 'conservative'] as const),
          revision: r.int('revision'),
          earned: r.big('earned'),
          credits: r.int('credits'),
          lines: [],
        };
        projection.wallets.set(wallet.walletId, wallet);
        break;
      }
      case 'l': {
        const wallet = projection.wallets.get(r.str('walletId'));
        if (!wallet) throw r.error('walletId', 'must name a wallet of an earlier record');
        for (const line of r.array('lines')) wallet.lines.push(lineOf(line));
        break;
      }
      case 'u': {
        const taskId = r.optStr('taskId');
        // Fed back through observe as the debit it stands for, so the set keeps its own rules.
        uncredited.observe({
          stream: r.str('stream'),
          type: 'UsageDebited',
          revision: r.int('revision'),
          data: {
            chargeId: r.str('chargeId'),
            amount: r.str('amount'),
            currency: r.str('currency'),
            walletId: r.str('userWalletId'),
            providerWalletId: r.str('providerWalletId'),
            containerId: r.str('containerId'),
            functionId: r.str('functionId'),
            ...(taskId !== undefined ? { taskId } : {}),
          },
        });
        break;
      }
      case 'o':
        projection.setOwner(r.str('walletId'), r.str('tenantId'));
        break;
      default:
        throw r.error('k', 'is an unknown record kind');
    }
  }
  return { projection, uncredited };
}

export interface LedgerStart {
  projection: LedgerProjection;
  uncredited: UncreditedDebits;
  /** Where the state came from, for the start-up log line. */
  from: 'snapshot' | 'log';
  snapshotPosition: bigint;
  /** Events read after the snapshot (or the whole log). */
  replayed: number;
}

/**
 * The ledger's state at start: the snapshot under `key` if usable, then the log after its position;
 * otherwise (none, damaged, another schema, `load` false) the whole log, saying why in the log.
 */
export async function loadLedgerState(
  store: EventStore,
  snapshots: SnapshotStore | undefined,
  key: string,
  log: Pick<Logger, 'log' | 'warn'>,
): Promise<LedgerStart> {
  let state: { projection: LedgerProjection; uncredited: UncreditedDebits } | undefined;
  let from: LedgerStart['from'] = 'log';
  if (snapshots) {
    const loaded = await snapshots
      .load(key, LEDGER_SNAPSHOT_SCHEMA)
      .catch((err: unknown) => ({ ok: false as const, reason: `cannot read it: ${String(err)}` }));
    if (loaded.ok) {
      try {
        state = restoreLedgerSnapshot(loaded.snapshot.records);
        from = 'snapshot';
      } catch (err) {
        log.warn(`snapshot ${key} not used (${err instanceof Error ? err.message : String(err)}): replaying the whole log`);
      }
    } else log.warn(`snapshot ${key} not used (${loaded.reason}): replaying the whole log`);
  }
  state ??= { projection: new LedgerProjection(), uncredited: new UncreditedDebits() };
  const snapshotPosition = state.projection.position;
  let replayed = 0;
  for await (const event of readAllPaged(store, snapshotPosition + 1n, 10_000)) {
    state.projection.apply(event);
    state.uncredited.observe(event);
    replayed++;
  }
  return { ...state, from, snapshotPosition, replayed };
}
