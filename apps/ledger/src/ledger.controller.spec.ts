import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ForbiddenError, OPERATOR, type Caller } from '@mesh/contracts';
import { InMemoryEventStore } from '@mesh/eventstore';
import type { NatsRequestContext } from '@mesh/runtime';
import { LedgerController } from './ledger.controller';
import { LedgerEngine, type LedgerConfig } from './ledger.engine';

/**
 * Defence in depth behind NATS permissions: a tenant's request that reached an operator-only
 * handler anyway (a misconfigured server, a service bug) is refused by the handler itself, and
 * writes nothing. (test/integration/ledger/tenancy.spec.ts covers what tenants may do, over NATS.)
 */
describe('LedgerController: operator-only handlers refuse a tenant caller', () => {
  let dir: string;
  let engine: LedgerEngine;
  let store: InMemoryEventStore;
  let controller: LedgerController;
  const ctx = (caller: Caller) => ({ caller }) as NatsRequestContext;
  const bob = ctx({ kind: 'tenant', tenantId: 'bob' });

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'mesh-ledger-controller-'));
    store = new InMemoryEventStore();
    const config = {
      DEFAULT_PROVIDER_WALLET: 'provider',
      LEDGER_WALLET_CACHE_MAX: 100,
      LEDGER_HTTP_PORT: 0,
      LEDGER_MAC_KEY_FILE: join(dir, 'ledger-mac.key'),
      LEDGER_DEFAULT_MAX_DEBT: '0.5',
      LEDGER_DEFAULT_MIN_BALANCE: '0',
      LEDGER_AUDIT_CONCURRENCY_MAX: 1,
      TENANT_WALLETS_MAX: 16,
      TENANT_MAX_DEBT_CEILING: '10',
    } as unknown as LedgerConfig;
    engine = new LedgerEngine(store, config);
    await engine.onModuleInit();
    controller = new LedgerController(engine);
    await controller.openWallet({ walletId: 'bob-main' }, bob);
  });
  afterEach(async () => {
    await engine.onModuleDestroy();
    rmSync(dir, { recursive: true, force: true });
  });

  it('given bob owns bob-main, when bob deposits, withdraws or adjusts through the handler, then each is forbidden and nothing is written', async () => {
    const written = store.log.length;
    const posting = { walletId: 'bob-main', amount: '100', reference: 'r1' };
    const cases: [() => Promise<unknown>, string][] = [
      [() => controller.deposit(posting, bob), 'forbidden: tenant bob may not deposit to wallet bob-main'],
      [() => controller.withdraw(posting, bob), 'forbidden: tenant bob may not withdraw from wallet bob-main'],
      [() => controller.adjust({ ...posting, reason: 'mine' }, bob), 'forbidden: tenant bob may not adjust wallet bob-main'],
      [() => Promise.resolve().then(() => controller.totals(undefined, bob)), 'forbidden: tenant bob may not read the ledger totals'],
      [() => Promise.resolve().then(() => controller.providerEarnings({}, bob)), 'forbidden: tenant bob may not read provider earnings'],
      [() => Promise.resolve().then(() => controller.audit(undefined, bob)), 'forbidden: tenant bob may not run the audit'],
    ];
    for (const [act, message] of cases) {
      const err = await act().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(ForbiddenError);
      expect((err as Error).message).toBe(message);
    }
    expect(store.log.length).toBe(written);
    // The operator may.
    await expect(controller.deposit(posting, ctx(OPERATOR))).resolves.toMatchObject({ balance: '100' });
  });
});
