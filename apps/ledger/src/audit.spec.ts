import fc from 'fast-check';
import { DomainError, UsageDebited, catalog, formatAmount, isEvent, type NewEvent } from '@mesh/contracts';
import { formatAuditReport, verifyAudit, walletEventHash } from '@mesh/audit';
import { openWallet, usageChargedData } from '@mesh/testing/ledger';
import { LedgerEngine, type LedgerConfig } from './ledger.engine';
import { LedgerProjection } from './projection/ledger-projection';
import { InMemoryEventStore } from '@mesh/eventstore';

const USERS = ['u0', 'u1', 'u2'];
const PROVIDERS = ['provider', 'p1'];

function ledgerOn(store: InMemoryEventStore): LedgerEngine {
  const config = { DEFAULT_PROVIDER_WALLET: 'provider', LEDGER_WALLET_CACHE_MAX: 100, LEDGER_HTTP_PORT: 0 } as unknown as LedgerConfig;
  return new LedgerEngine(store, config);
}

async function openAll(core: LedgerEngine): Promise<void> {
  for (const walletId of USERS) await core.wallets.execute(openWallet(walletId, { maxDebt: 50_000_000n }));
  for (const walletId of PROVIDERS) await core.wallets.execute(openWallet(walletId, { kind: 'provider' }));
}

let chargeSeq = 0;
/** Appends a UsageCharged to its meter stream (as the credit-manager would) and returns its data. */
async function charge(store: InMemoryEventStore, walletId: string, providerWalletId: string, amountMinor: bigint, chargeId = `ch-c1-${++chargeSeq}`) {
  const data = usageChargedData({ chargeId, sampleId: chargeId.slice(3), walletId, providerWalletId, amount: formatAmount(amountMinor) });
  const event: NewEvent = { id: `charge-${chargeId}-${store.log.length}`, type: 'UsageCharged', data };
  await store.append('meter-c1', [event], 'any');
  return data;
}

type Op =
  | { kind: 'deposit' | 'withdraw' | 'adjust'; wallet: number; amount: bigint; ref: number }
  | { kind: 'charge'; wallet: number; provider: number; amount: bigint; again: boolean }
  | { kind: 'burst'; charges: Array<{ wallet: number; provider: number; amount: bigint }>; again: boolean };

const chargeArb = fc.record({ wallet: fc.nat(2), provider: fc.nat(1), amount: fc.bigInt(0n, 90_000_000n) });

const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ kind: fc.constantFrom('deposit' as const, 'withdraw' as const), wallet: fc.nat(2), amount: fc.bigInt(1n, 500_000_000n), ref: fc.nat(4) }),
  fc.record({
    kind: fc.constant('adjust' as const),
    wallet: fc.nat(2),
    amount: fc.bigInt(-200_000_000n, 200_000_000n).filter((a) => a !== 0n),
    ref: fc.nat(4),
  }),
  fc.record({ kind: fc.constant('charge' as const), wallet: fc.nat(2), provider: fc.nat(1), amount: fc.bigInt(0n, 90_000_000n), again: fc.boolean() }),
  // Charges posted at once, as the consumer does: the provider credits are group-committed.
  fc.record({ kind: fc.constant('burst' as const), charges: fc.array(chargeArb, { minLength: 2, maxLength: 8 }), again: fc.boolean() }),
);

describe('audit verify', () => {
  it('property: random deposits, charges (some redelivered), withdrawals and adjustments keep the books balanced and replay to the same balances', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(opArb, { maxLength: 40 }), async (ops) => {
        const store = new InMemoryEventStore();
        const core = ledgerOn(store);
        await openAll(core);
        // An independent model of the rules, to compare the ledger with.
        const model = new Map<string, bigint>([...USERS, ...PROVIDERS].map((w) => [w, 0n]));
        const refs = new Map<string, bigint>();
        const posted: Awaited<ReturnType<typeof charge>>[] = [];
        const book = (data: Awaited<ReturnType<typeof charge>>, amount: bigint) => {
          posted.push(data);
          model.set(data.walletId, model.get(data.walletId)! - amount);
          model.set(data.providerWalletId, model.get(data.providerWalletId)! + amount);
        };
        for (const op of ops) {
          if (op.kind === 'burst') {
            const fresh = [];
            for (const c of op.charges) fresh.push({ data: await charge(store, USERS[c.wallet], PROVIDERS[c.provider], c.amount), amount: c.amount });
            const again = op.again && posted.length > 0 ? [posted[posted.length - 1]] : [];
            await Promise.all([...fresh.map((f) => core.postCharge(f.data)), ...again.map((d) => core.postCharge(d))]);
            for (const f of fresh) book(f.data, f.amount);
            continue;
          }
          if (op.kind === 'charge') {
            const again = op.again && posted.length > 0;
            const data = again ? posted[posted.length - 1] : await charge(store, USERS[op.wallet], PROVIDERS[op.provider], op.amount);
            await core.postCharge(data);
            if (!again) book(data, op.amount);
            continue;
          }
          const walletId = USERS[op.wallet];
          const key = `${op.kind}:${walletId}:${op.ref}`;
          const delta = op.kind === 'withdraw' ? -op.amount : op.amount;
          const before = model.get(walletId)!;
          const expectRefusal = refs.has(key) ? refs.get(key) !== op.amount : op.kind !== 'deposit' && delta < 0n && before + delta < 0n;
          const type = op.kind === 'deposit' ? 'Deposit' : op.kind === 'withdraw' ? 'Withdraw' : 'Adjust';
          try {
            await core.wallets.execute({ type, walletId, amount: op.amount, reference: `r${op.ref}`, reason: 'property' } as never);
            expect(expectRefusal).toBe(false);
            if (!refs.has(key)) {
              refs.set(key, op.amount);
              model.set(walletId, before + delta);
            }
          } catch (err) {
            if (!(err instanceof DomainError)) throw err;
            expect(expectRefusal).toBe(true);
          }
        }
        // The book agrees with the model.
        for (const [walletId, balance] of model) expect((await core.wallets.state(walletId)).balance).toBe(balance);
        // A projection rebuilt from the log agrees too, and the audit passes against it.
        const projection = new LedgerProjection();
        for (const e of store.log) projection.apply(e);
        for (const [walletId, balance] of model) expect(projection.wallet(walletId).balance).toBe(balance);
        expect(projection.totals.debited).toBe(projection.totals.credited);
        const report = await verifyAudit(store, projection);
        if (!report.pass) throw new Error(formatAuditReport(report));
        expect(report.debits).toBe(posted.filter((p) => p.amount !== '0').length);
      }),
      { numRuns: 60 },
    );
  });

  async function smallLedger() {
    const store = new InMemoryEventStore();
    const core = ledgerOn(store);
    await openAll(core);
    await core.wallets.execute({ type: 'Deposit', walletId: 'u0', amount: 100_000_000n, reference: 'tx1' });
    await core.postCharge(await charge(store, 'u0', 'provider', 30_000_000n, 'ch-a'));
    await core.postCharge(await charge(store, 'u0', 'provider', 20_000_000n, 'ch-b'));
    return { store, core };
  }

  /** A 0.1 GRC charge of u1 debited (after a 1 GRC deposit) and not yet credited: the state between the ledger's two appends. */
  async function halfPostedCharge(chargeId: string) {
    const { store, core } = await smallLedger();
    const data = await charge(store, 'u1', 'provider', 10_000_000n, chargeId);
    await core.wallets.execute({ type: 'Deposit', walletId: 'u1', amount: 100_000_000n, reference: 'tx1' });
    await core.wallets.execute({
      type: 'PostDebit',
      walletId: 'u1',
      chargeId: data.chargeId,
      amount: 10_000_000n,
      currency: 'GRC',
      providerWalletId: 'provider',
      containerId: 'c1',
      functionId: 'f1',
    });
    return { store, core, data };
  }

  it('passes a clean log with counts and every invariant', async () => {
    const { store } = await smallLedger();
    const report = await verifyAudit(store);
    expect(report).toMatchObject({
      pass: true,
      charges: 2,
      debits: 2,
      credits: 2,
      wallets: 5,
      totals: { debited: '0.5', credited: '0.5', deposited: '1', balances: '1' },
    });
    expect(report.invariants.map((i) => i.name)).toEqual([
      'events-valid',
      'books-balance',
      'charges-paired',
      'no-double-posting',
      'postings-have-causes',
      'balances-derive',
      'hash-chain',
      'money-conserved',
    ]);
    expect(formatAuditReport(report)).toMatch(/audit PASSED[\s\S]*PASS {2}books-balance/);
  });

  it('reports the first broken link when an event was altered', async () => {
    const { store } = await smallLedger();
    const altered = store.log.find((e) => e.id === 'debit-ch-a');
    if (!altered || !isEvent(altered, UsageDebited)) throw new Error('expected the debit of ch-a');
    altered.data.amount = '0.1'; // someone rewrites history
    const report = await verifyAudit(store);
    expect(report.pass).toBe(false);
    expect(report.firstBrokenLink).toMatchObject({ stream: 'wallet-u0', eventId: 'debit-ch-a' });
    const failed = report.invariants.filter((i) => !i.pass).map((i) => i.name);
    expect(failed).toEqual(expect.arrayContaining(['hash-chain', 'balances-derive', 'books-balance', 'charges-paired']));
  });

  it('reports an event whose data breaks its schema, named by the store that refused it, and the gap it leaves in its wallet', async () => {
    const { store } = await smallLedger();
    const altered = store.log.find((e) => e.id === 'debit-ch-a');
    if (!altered || !isEvent(altered, UsageDebited)) throw new Error('expected the debit of ch-a');
    Object.assign(altered.data, { amount: 12 }); // not a decimal string: poison, skipped by every reader
    const report = await verifyAudit(store);
    const byName = Object.fromEntries(report.invariants.map((i) => [i.name, i]));
    // The store checks the data on read (as JetStream does): the audit lists what it skipped, by position and subject
    expect(byName['events-valid']).toMatchObject({ pass: false, violations: 1 });
    expect(byName['events-valid'].examples[0]).toBe(
      `poison at position ${altered.position} on mesh.events.wallet.u0: UsageDebited data breaks its schema: amount: must be a decimal string such as "0.5"`,
    );
    // And the wallet's history has a hole where it was: the next revision does not follow, the books do not balance
    expect(report.pass).toBe(false);
    expect(byName['charges-paired'].pass).toBe(false);
  });

  it('tells a debit whose credit is missing from a balanced book', async () => {
    const { store, core, data } = await halfPostedCharge('ch-half');
    const report = await verifyAudit(store);
    const byName = Object.fromEntries(report.invariants.map((i) => [i.name, i]));
    expect(byName['charges-paired']).toMatchObject({ pass: false, violations: 1 });
    expect(byName['charges-paired'].examples[0]).toContain('charge ch-half: debit of 0.1 from u1 has no credit (expected on provider)');
    expect(byName['books-balance'].pass).toBe(false);
    expect(byName['hash-chain'].pass).toBe(true);
    // Redelivering the charge heals it: the debit is a no-op, the credit is written.
    expect(await core.postCharge(data)).toEqual({ debited: false, credited: true });
    expect((await verifyAudit(store)).pass).toBe(true);
  });

  it('with creditGraceMs, a credit written just after the end completes its charge (a live ledger posts the debit, then the credit)', async () => {
    const { store, core, data } = await halfPostedCharge('ch-in-flight');
    const head = await store.headPosition();
    // The audit starts with the charge half-posted; the ledger writes the credit while it waits.
    const audit = verifyAudit(store, undefined, { creditGraceMs: 60_000 });
    expect(await core.postCharge(data)).toEqual({ debited: false, credited: true });
    const report = await audit;
    expect(report.pass).toBe(true);
    expect(report.toPosition).toBe(head.toString());
    expect(report.totals.credited).toBe(report.totals.debited);
  });

  it('with creditGraceMs, a credit that never comes is still reported once the grace is over', async () => {
    const { store } = await halfPostedCharge('ch-stuck');
    const report = await verifyAudit(store, undefined, { creditGraceMs: 300 });
    const byName = Object.fromEntries(report.invariants.map((i) => [i.name, i]));
    expect(byName['charges-paired']).toMatchObject({ pass: false, violations: 1 });
    expect(byName['books-balance'].pass).toBe(false);
  });

  it('reads the single-charge UsageCredited of logs written before group commit', async () => {
    const { store, core } = await smallLedger();
    const data = await charge(store, 'u0', 'provider', 5_000_000n, 'ch-legacy');
    await core.wallets.execute({
      type: 'PostDebit',
      walletId: 'u0',
      chargeId: data.chargeId,
      amount: 5_000_000n,
      currency: 'GRC',
      providerWalletId: 'provider',
      containerId: 'c1',
      functionId: 'f1',
      taskId: 't1',
    });
    // The old form, as the ledger wrote it before: the charge's fields at the top level.
    const provider = await core.wallets.state('provider');
    const legacy: Record<string, unknown> = {
      walletId: 'provider',
      currency: 'GRC',
      balanceAfter: formatAmount(provider.balance + 5_000_000n),
      amount: '0.05',
      chargeId: 'ch-legacy',
      userWalletId: 'u0',
      containerId: 'c1',
      taskId: 't1',
      functionId: 'f1',
      prevHash: provider.lastHash,
    };
    legacy.hash = walletEventHash('UsageCredited', legacy, provider.lastHash);
    expect(() => catalog.validate('UsageCredited', 'wallet', legacy)).not.toThrow();
    await store.append('wallet-provider', [{ id: 'credit-ch-legacy', type: 'UsageCredited', data: legacy }], provider.revision);
    const projection = new LedgerProjection();
    for (const e of store.log) projection.apply(e);
    const report = await verifyAudit(store, projection);
    if (!report.pass) throw new Error(formatAuditReport(report));
    expect(report).toMatchObject({ debits: 3, credits: 3 });
    expect(projection.wallet('provider').credits).toBe(3);
    // Loaded again from its stream, the wallet knows the charge: a redelivery is a no-op.
    core.wallets.forget();
    expect(await core.postCharge(data)).toEqual({ debited: false, credited: false });
  });

  it('flags a posting without its charge and a projection that disagrees with the log', async () => {
    const { store, core } = await smallLedger();
    await core.wallets.credit('provider', 'GRC', { chargeId: 'ch-ghost', amount: 1n, userWalletId: 'u0', containerId: 'c1', functionId: 'f1' });
    const projection = new LedgerProjection();
    for (const e of store.log) projection.apply(e);
    projection.wallets.get('u0')!.balance += 1n;
    const report = await verifyAudit(store, projection);
    const failed = report.invariants.filter((i) => !i.pass).map((i) => i.name);
    expect(failed).toEqual(expect.arrayContaining(['postings-have-causes', 'charges-paired', 'projection-matches']));
  });
});
