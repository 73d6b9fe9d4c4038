import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatAuditReport, verifyAudit, walletEventHash } from '@mesh/audit';
import { creditedChargesOf, isEvent, UsageCredited, WalletOpened } from '@mesh/contracts';
import { InMemoryEventStore } from '@mesh/eventstore';
import { openWallet, usageChargedData } from '@mesh/testing/ledger';
import { LedgerEngine, type LedgerConfig } from './ledger.engine';

/**
 * Debit first, credit derived from it: a debit whose credit was never written (the ledger died
 * between the two) is credited when the ledger starts again, and only if the debit is the ledger's
 * own (sealed with its MAC).
 */
describe('LedgerEngine: debits without their credit at start', () => {
  let dir: string;
  const engines: LedgerEngine[] = [];
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'mesh-ledger-'))));
  afterEach(async () => {
    for (const engine of engines.splice(0)) await engine.onModuleDestroy();
    rmSync(dir, { recursive: true, force: true });
  });

  const startOn = async (store: InMemoryEventStore) => {
    const config = {
      DEFAULT_PROVIDER_WALLET: 'provider',
      LEDGER_WALLET_CACHE_MAX: 100,
      LEDGER_HTTP_PORT: 0,
      LEDGER_MAC_KEY_FILE: join(dir, 'secrets', 'ledger-mac.key'),
    } as unknown as LedgerConfig;
    const engine = new LedgerEngine(store, config);
    engines.push(engine);
    await engine.onModuleInit();
    return engine;
  };
  const charge = (chargeId: string) => usageChargedData({ chargeId, sampleId: chargeId, walletId: 'alice', providerWalletId: 'provider', amount: '0.25' });
  const creditedIds = (store: InMemoryEventStore) =>
    store.log.flatMap((e) => (isEvent(e, UsageCredited) ? creditedChargesOf(e.data).map((c) => c.chargeId) : []));

  it('given a debit stored and the ledger gone before its credit, when the ledger starts, then the credit is written and the audit passes', async () => {
    const store = new InMemoryEventStore();
    const first = await startOn(store);
    await first.wallets.execute(openWallet('alice'));
    await first.wallets.execute({ type: 'Deposit', walletId: 'alice', amount: 100_000_000n, reference: 'tx1' });
    for (const id of ['ch-1', 'ch-2']) await store.append('meter-c1', [{ id: `charged-${id}`, type: 'UsageCharged', data: charge(id) }], 'any');
    // What a crash right after the debits leaves: the debits, no credit.
    for (const id of ['ch-1', 'ch-2'])
      await first.wallets.execute({
        type: 'PostDebit',
        walletId: 'alice',
        chargeId: id,
        amount: 25_000_000n,
        currency: 'GRC',
        providerWalletId: 'provider',
        containerId: 'c1',
        functionId: 'f1',
        taskId: 't1',
      });
    await first.onModuleDestroy();
    engines.splice(0);
    expect(creditedIds(store)).toEqual([]);
    expect((await verifyAudit(store)).invariants.find((i) => i.name === 'charges-paired')).toMatchObject({ pass: false, violations: 2 });

    const second = await startOn(store);
    expect(creditedIds(store)).toEqual(['ch-1', 'ch-2']);
    const report = await verifyAudit(store, undefined, { macKeys: second.macKeys });
    expect(report.invariants.filter((i) => !i.pass)).toEqual([]);
    expect(report.invariants.map((i) => i.name)).toContain('wallet-mac');
    // Without the keys the MAC check is skipped, and the printed report says so.
    const keyless = await verifyAudit(store);
    expect(keyless.invariants.map((i) => i.name)).not.toContain('wallet-mac');
    expect(formatAuditReport(keyless)).toMatch(/SKIP {2}wallet-mac {13}no MAC key given/);

    // Started once more: nothing is owed, nothing is written.
    const written = store.log.length;
    await second.onModuleDestroy();
    engines.splice(0);
    await startOn(store);
    expect(store.log).toHaveLength(written);
  });

  it('never credits a forged debit (correct hash chain, no MAC): its wallet is refused and the provider is not credited', async () => {
    const store = new InMemoryEventStore();
    const first = await startOn(store);
    await first.wallets.execute(openWallet('alice'));
    await store.append('meter-c1', [{ id: 'charged-ch-f', type: 'UsageCharged', data: charge('ch-f') }], 'any');
    const [opened] = await store.read('wallet-alice');
    if (!isEvent(opened, WalletOpened) || !opened.data.hash) throw new Error(`expected a hashed WalletOpened, got ${opened.type}`);
    const prevHash = opened.data.hash;
    const data = {
      walletId: 'alice',
      currency: 'GRC',
      balanceAfter: '-0.25',
      prevHash,
      amount: '0.25',
      chargeId: 'ch-f',
      providerWalletId: 'provider',
      containerId: 'c1',
      functionId: 'f1',
    };
    await store.append(
      'wallet-alice',
      [{ id: 'debit-ch-f', type: 'UsageDebited', data: { ...data, hash: walletEventHash('UsageDebited', data, prevHash) } }],
      0,
    );
    await first.onModuleDestroy();
    engines.splice(0);

    const second = await startOn(store);
    expect(creditedIds(store)).toEqual([]);
    const report = await verifyAudit(store, undefined, { macKeys: second.macKeys });
    expect(report.invariants.find((i) => i.name === 'wallet-mac')).toMatchObject({
      pass: false,
      examples: [expect.stringMatching(/^wallet-alice@1 \(debit-ch-f, position \d+\): carries no MAC/)],
    });
  });
});
