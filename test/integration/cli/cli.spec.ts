import { pricePlansQuery } from '@mesh/contracts';
import { startService, type RunningService } from '@mesh/runtime';
import { NatsServerProcess, meshFromSource } from '@mesh/testing';
import { LedgerService } from '../../../apps/ledger/src/main';
import { CreditManagerService } from '../../../apps/credit-manager/src/main';

/** What `--json` printed. */
const json = (out: string): unknown => JSON.parse(out);

/** The `mesh` binary as a user runs it: exit codes, --json, errors that say what to do. */
describe('mesh CLI', () => {
  let server: NatsServerProcess;
  let ledger: RunningService;
  let creditManager: RunningService;
  const mesh = (...args: string[]) => meshFromSource(server.url, ...args);

  beforeAll(async () => {
    server = await NatsServerProcess.start();
    ledger = await startService(LedgerService, { NATS_URL: server.url, LEDGER_HTTP_PORT: '0', LOG_LEVEL: 'error' });
    creditManager = await startService(CreditManagerService, { NATS_URL: server.url, LOG_LEVEL: 'error' });
  });
  afterAll(async () => {
    await creditManager?.stop();
    await ledger?.stop();
    await server?.dispose();
  });

  it('prints help and exits 0', async () => {
    const r = await mesh('--help');
    expect(r.code).toBe(0);
    expect(r.out).toContain('Exit codes: 0 success, 1 the operation failed, 2 usage error.');
    expect((await mesh('wallet', 'deposit', '--help')).out).toContain('idempotent by --ref');
  });

  it('exits 2 on a usage error', async () => {
    expect((await mesh('wallet', 'frobnicate')).code).toBe(2);
    expect((await mesh('wallet', 'deposit', 'alice')).code).toBe(2); // missing <amount>
    expect((await mesh('demo', '--speed', 'fast')).code).toBe(2);
  });

  it('runs wallet commands, with --json for scripts', async () => {
    expect((await mesh('wallet', 'open', 'cli-alice', '--max-debt', '0.5')).code).toBe(0);
    const deposit = await mesh('--json', 'wallet', 'deposit', 'cli-alice', '2.5', '--ref', 'tx-cli-1');
    expect(deposit.code).toBe(0);
    expect(json(deposit.out)).toMatchObject({ balance: '2.5' });
    expect((await mesh('wallet', 'deposit', 'cli-alice', '2.5', '--ref', 'tx-cli-1')).code).toBe(0); // idempotent
    expect(json((await mesh('--json', 'wallet', 'balance', 'cli-alice')).out)).toMatchObject({ walletId: 'cli-alice', balance: '2.5', debt: '0' });
    expect((await mesh('wallet', 'statement', 'cli-alice')).out).toContain('FundsDeposited');
  });

  it('exits 1 on a refused operation and says why', async () => {
    const r = await mesh('wallet', 'deposit', 'cli-alice', '0.123456789');
    expect(r.code).toBe(1);
    expect(r.err).toContain('amount: must have at most 8 decimals for GRC');
    expect((await mesh('wallet', 'balance', 'nobody-here')).code).toBe(1);
  });

  it('exits 1 naming the service that does not answer', async () => {
    const r = await mesh('fn', 'list');
    expect(r.code).toBe(1);
    expect(r.err).toContain('is the scheduler service running?');
  });

  it('sets and lists price plans, and refuses bad prices', async () => {
    const set = await mesh('plan', 'set', 'cli-plan', '--cpu', '0.6', '--memory', '0.01', '--from', '2026-01-01T00:00:00Z');
    expect(set.code).toBe(0);
    expect(set.out).toContain('price plan cli-plan version 1: 0.6 GRC/core-hour, 0.01/GiB-hour');
    expect((await mesh('plan', 'set', 'cli-plan', '--cpu', '0.6', '--memory', '0.01', '--from', '2026-01-01T00:00:00Z')).out).toContain('unchanged');
    const listed = pricePlansQuery.reply.parse(json((await mesh('--json', 'plan', 'list', 'cli-plan')).out));
    expect(listed.plans).toMatchObject([{ planId: 'cli-plan', current: { version: 1, cpuPerCoreHour: '0.6', billing: 'used' } }]);
    expect((await mesh('plan', 'list')).out).toMatch(/cli-plan\s+1\s+v1\s+0\.6/);
    const refused = await mesh('plan', 'set', 'cli-plan', '--cpu', '0');
    expect(refused.code).toBe(1);
    expect(refused.err).toContain('cpuPerCoreHour');
    expect((await mesh('plan', 'set', 'cli-plan', '--cpu', '1', '--billing', 'sometimes')).code).toBe(2);
    expect((await mesh('plan', 'set', 'cli-plan', '--cpu', '1', '--from', 'next tuesday')).code).toBe(2);
  });

  it('verifies the books', async () => {
    const r = await mesh('audit', 'verify');
    expect(r.code).toBe(0);
    expect(r.out).toContain('audit PASSED');
  });
});
