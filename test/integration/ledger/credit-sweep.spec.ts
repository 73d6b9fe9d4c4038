import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Logger } from '@nestjs/common';
import type { NatsConnection } from 'nats';
import { verifyAudit } from '@mesh/audit';
import { commonEnv, loadConfig } from '@mesh/config';
import { creditedChargesOf, isEvent, UsageCredited } from '@mesh/contracts';
import { JetStreamEventStore } from '@mesh/eventstore';
import { readAllPaged } from '@mesh/eventstore/port';
import { NatsServerProcess, eventually } from '@mesh/testing';
import { openWallet, usageChargedData } from '@mesh/testing/ledger';
import { LedgerEnv } from '../../../apps/ledger/src/config';
import { LedgerEngine } from '../../../apps/ledger/src/ledger.engine';

jest.setTimeout(120_000);

/**
 * The periodic sweep (LEDGER_CREDIT_SWEEP_INTERVAL_MS): a debit whose credit was never written
 * (what a crash between the two leaves) is credited while the ledger keeps running, exactly once,
 * without waiting for a restart. The crash window is made as in ledger.engine.spec.ts: the
 * ledger's own wallet handler writes the debit (sealed with its MAC) and nothing writes the credit.
 */
describe('ledger credit sweep', () => {
  let server: NatsServerProcess;
  let nc: NatsConnection;
  let store: JetStreamEventStore;
  let dir: string;
  let engine: LedgerEngine | undefined;

  beforeAll(async () => {
    server = await NatsServerProcess.start();
    nc = await server.connect();
    store = await JetStreamEventStore.connect(nc);
    dir = mkdtempSync(join(tmpdir(), 'mesh-ledger-sweep-'));
    Logger.overrideLogger(['error']);
  });
  afterAll(async () => {
    await engine?.onModuleDestroy();
    await store.close();
    await nc.close();
    await server.dispose();
    rmSync(dir, { recursive: true, force: true });
    Logger.overrideLogger(['log', 'error', 'warn', 'debug', 'verbose']);
  });

  const creditsOf = async (chargeId: string) => {
    let count = 0;
    for await (const e of readAllPaged(store)) if (isEvent(e, UsageCredited)) count += creditedChargesOf(e.data).filter((c) => c.chargeId === chargeId).length;
    return count;
  };
  /** What a crash right after a charge's debit leaves: the debit (the ledger's own, MAC'd), no credit. */
  const debitWithoutCredit = async (running: LedgerEngine, chargeId: string) => {
    const data = usageChargedData({ chargeId, sampleId: chargeId, walletId: 'alice', providerWalletId: 'provider', amount: '0.25' });
    await store.append('meter-c1', [{ id: `charged-${chargeId}`, type: 'UsageCharged', data }], 'any');
    await running.wallets.execute({
      type: 'PostDebit',
      walletId: 'alice',
      chargeId,
      amount: 25_000_000n,
      currency: 'GRC',
      providerWalletId: 'provider',
      containerId: data.containerId,
      functionId: data.functionId,
    });
  };

  it('given a debit stored and its credit never written, when the ledger keeps running, then a sweep credits it once and the books pass the audit', async () => {
    // Given a running ledger sweeping often (real nats-server, JetStream store)
    const config = loadConfig(
      { ...LedgerEnv, ...commonEnv },
      {
        NATS_URL: server.url,
        LEDGER_HTTP_PORT: '0',
        LEDGER_MAC_KEY_FILE: join(dir, 'ledger-mac.key'),
        LEDGER_CREDIT_SWEEP_INTERVAL_MS: '50',
        LOG_LEVEL: 'error',
      },
    );
    engine = new LedgerEngine(store, config, nc);
    await engine.onModuleInit();
    const running = engine;
    await running.wallets.execute(openWallet('alice'));
    await running.wallets.execute({ type: 'Deposit', walletId: 'alice', amount: 100_000_000n, reference: 'tx1' });
    // When a debit is left without its credit while it runs
    await debitWithoutCredit(running, 'ch-1');
    expect(await creditsOf('ch-1')).toBe(0);
    // Then a sweep credits it, without a restart
    await eventually(async () => (await creditsOf('ch-1')) === 1, 60_000, 'the sweep credits ch-1');
    // And later sweeps do not credit it again: by the time a second such debit is credited, at
    // least two more sweeps have run after the first credit (one sees the debit, the next credits it)
    const sweepsAfterFirst = running.sweeps;
    await debitWithoutCredit(running, 'ch-2');
    await eventually(async () => (await creditsOf('ch-2')) === 1, 60_000, 'the sweep credits ch-2');
    expect(running.sweeps).toBeGreaterThanOrEqual(sweepsAfterFirst + 2);
    expect(await creditsOf('ch-1')).toBe(1);
    // And every charge is paired, the balances are their events (MACs checked)
    const report = await verifyAudit(store, undefined, { macKeys: running.macKeys });
    expect(report.invariants.filter((i) => !i.pass)).toEqual([]);
    expect(report.invariants.map((i) => i.name)).toEqual(expect.arrayContaining(['charges-paired', 'wallet-mac']));
  });
});
