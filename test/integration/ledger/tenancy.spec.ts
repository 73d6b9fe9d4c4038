import { request as httpRequest } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { NatsConnection } from 'nats';
import { httpTokenFor, readHttpTokenKey } from '@mesh/audit';
import {
  adjustRequest,
  auditRequest,
  balanceRequest,
  containerCostRequest,
  depositRequest,
  isEvent,
  openWalletRequest,
  setPolicyRequest,
  statementRequest,
  taskCostRequest,
  WalletOpened,
  withdrawRequest,
} from '@mesh/contracts';
import { JetStreamEventStore } from '@mesh/eventstore';
import { MeshClient, RequestError, startService, type RunningService } from '@mesh/runtime';
import { NatsServerProcess, eventually, freePort, runMesh } from '@mesh/testing';
import { usageChargedData } from '@mesh/testing/ledger';
import { LedgerService } from '../../../apps/ledger/src/main';

/**
 * The ledger's trust boundary against a real nats-server and the real HTTP server: tenants (their
 * requests on `mesh.tenant.<tenantId>.*`, as MeshClient(nc, t, tenantId) sends them) act only on the
 * wallets they own, within limits; money movements and the whole-book reads are the operator's; the
 * HTTP API wants a bearer token with the same rules, refuses foreign Host headers, and runs one
 * audit at a time. Every refusal writes no event and moves no money.
 */
describe('ledger tenancy', () => {
  let server: NatsServerProcess;
  let nc: NatsConnection;
  let raw: JetStreamEventStore;
  let ledger: RunningService | undefined;
  let operator: MeshClient;
  let alice: MeshClient;
  let bob: MeshClient;
  let httpPort: number;
  let secrets: string;
  let tokenKey: Buffer;
  let tokenKeyFile: string;

  const WALLETS_MAX = 3;

  /** The error a refused request rejects with. */
  const refusal = async (promise: Promise<unknown>): Promise<RequestError> => {
    const err = await promise.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(RequestError);
    return err as RequestError;
  };
  /** Runs `act` (which must be refused) and checks that the log did not grow and the balances did not move. */
  const refusedWithoutEffect = async (act: () => Promise<unknown>, walletIds: string[] = ['alice-main']): Promise<RequestError> => {
    const head = await raw.headPosition();
    const before = await Promise.all(walletIds.map((walletId) => operator.request(balanceRequest, { walletId })));
    const err = await refusal(act());
    expect(await raw.headPosition()).toBe(head);
    expect(await Promise.all(walletIds.map((walletId) => operator.request(balanceRequest, { walletId })))).toEqual(before);
    return err;
  };

  /** A GET with node:http (so that the Host header is ours to set). */
  type Answer = { status: number; headers: Record<string, unknown>; body: { ok: boolean; data?: unknown; error?: { code: string; message: string } } };
  const get = (path: string, headers: Record<string, string> = {}) =>
    new Promise<Answer>((resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port: httpPort, path, headers }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: JSON.parse(text) as Answer['body'] }));
      });
      req.once('error', reject);
      req.end();
    });
  const as = (principal: string) => ({ authorization: `Bearer ${httpTokenFor(tokenKey, principal)}` });

  const charge = async (chargeId: string, walletId: string, taskId: string, containerId: string) => {
    const data = { ...usageChargedData({ chargeId, sampleId: chargeId, walletId, providerWalletId: 'provider', amount: '0.1' }), taskId, containerId };
    await raw.append(`meter-${containerId}`, [{ id: `charged-${chargeId}`, type: 'UsageCharged', data }], 'any');
  };

  beforeAll(async () => {
    server = await NatsServerProcess.start();
    nc = await server.connect('ledger-tenancy-test');
    raw = await JetStreamEventStore.connect(nc);
    operator = new MeshClient(nc);
    alice = new MeshClient(nc, 5000, 'alice');
    bob = new MeshClient(nc, 5000, 'bob');
    httpPort = await freePort();
    secrets = mkdtempSync(join(tmpdir(), 'mesh-ledger-tenancy-'));
    tokenKeyFile = join(secrets, 'ledger-http-token.key');
    ledger = await startService(LedgerService, {
      NATS_URL: server.url,
      LOG_LEVEL: 'error',
      LEDGER_HTTP_PORT: String(httpPort),
      LEDGER_MAC_KEY_FILE: join(secrets, 'ledger-mac.key'),
      LEDGER_HTTP_TOKEN_KEY_FILE: tokenKeyFile,
      LEDGER_HTTP_ALLOWED_HOSTS: 'ledger.internal',
      TENANT_WALLETS_MAX: String(WALLETS_MAX),
      TENANT_MAX_DEBT_CEILING: '2',
    });
    tokenKey = (await readHttpTokenKey(tokenKeyFile))!;
    // alice's wallet (opened by alice), funded by the operator, charged for her task t-alice.
    await alice.request(openWalletRequest, { walletId: 'alice-main' });
    await operator.request(depositRequest, { walletId: 'alice-main', amount: '5', reference: 'top-up-1' });
    await charge('ch-alice-1', 'alice-main', 't-alice', 'c-alice');
    await eventually(async () => (await operator.request(taskCostRequest, { taskId: 't-alice' })).charges === 1, 15_000, 'the charge posted');
  });
  afterAll(async () => {
    await ledger?.stop();
    await nc?.close();
    await server?.dispose();
    rmSync(secrets, { recursive: true, force: true });
  });

  describe('over NATS', () => {
    it("alice's wallet is hers: WalletOpened records her as its owner; she reads its balance and statement", async () => {
      const [opened] = (await raw.read('wallet-alice-main')).filter((e) => isEvent(e, WalletOpened));
      expect(opened.data).toMatchObject({ walletId: 'alice-main', tenantId: 'alice' });
      expect(await alice.request(balanceRequest, { walletId: 'alice-main' })).toMatchObject({ walletId: 'alice-main', balance: '4.9' });
      const statement = await alice.request(statementRequest, { walletId: 'alice-main' });
      expect(statement.lines.map((l) => l.type)).toEqual(['WalletOpened', 'FundsDeposited', 'UsageDebited']);
      expect(await alice.request(taskCostRequest, { taskId: 't-alice' })).toMatchObject({ walletId: 'alice-main', total: '0.1' });
      expect(await alice.request(containerCostRequest, { containerId: 'c-alice' })).toMatchObject({ walletId: 'alice-main', total: '0.1' });
    });

    it("bob cannot read alice's wallet, her task's cost or her container's cost", async () => {
      for (const [act, message] of [
        [() => bob.request(balanceRequest, { walletId: 'alice-main' }), 'forbidden: tenant bob may not read wallet alice-main'],
        [() => bob.request(statementRequest, { walletId: 'alice-main' }), 'forbidden: tenant bob may not read wallet alice-main'],
        [() => bob.request(taskCostRequest, { taskId: 't-alice' }), 'forbidden: tenant bob may not read the cost of task t-alice'],
        [() => bob.request(containerCostRequest, { containerId: 'c-alice' }), 'forbidden: tenant bob may not read the cost of container c-alice'],
        // A wallet that does not exist is refused like another tenant's: nothing to learn from the answer.
        [() => bob.request(balanceRequest, { walletId: 'nobody' }), 'forbidden: tenant bob may not read wallet nobody'],
      ] as const) {
        const err = await refusedWithoutEffect(act);
        expect({ code: err.code, message: err.message }).toEqual({ code: 'forbidden', message });
      }
    });

    it("bob cannot change the policy of alice's wallet, nor open a wallet of the same id", async () => {
      let err = await refusedWithoutEffect(() => bob.request(setPolicyRequest, { walletId: 'alice-main', maxDebt: '0' }));
      expect({ code: err.code, message: err.message }).toEqual({
        code: 'forbidden',
        message: 'forbidden: tenant bob may not change the policy of wallet alice-main',
      });
      err = await refusedWithoutEffect(() => bob.request(openWalletRequest, { walletId: 'alice-main' }));
      expect({ code: err.code, message: err.message }).toEqual({ code: 'forbidden', message: 'forbidden: tenant bob may not open wallet alice-main' });
      // alice opening her own wallet again is answered as it always was.
      expect((await refusedWithoutEffect(() => alice.request(openWalletRequest, { walletId: 'alice-main' }))).code).toBe('wallet_exists');
    });

    it('bob cannot deposit, withdraw or adjust, even on his own wallet: nobody answers money movements on tenant subjects', async () => {
      await bob.request(openWalletRequest, { walletId: 'bob-main' });
      for (const act of [
        () => bob.request(depositRequest, { walletId: 'bob-main', amount: '100', reference: 'free-money' }),
        () => bob.request(withdrawRequest, { walletId: 'alice-main', amount: '1', reference: 'steal' }),
        () => bob.request(adjustRequest, { walletId: 'bob-main', amount: '100', reason: 'because', reference: 'adj' }),
      ]) {
        // With NATS permissions (docs/security.md) the publish itself is refused (`forbidden`); here,
        // without them, no service listens on a tenant copy of an operator-only subject.
        const err = await refusedWithoutEffect(act, ['alice-main', 'bob-main']);
        expect(err.code).toBe('no_responders');
      }
    });

    it('bob cannot open a provider wallet, nor give a wallet more debt than the ceiling', async () => {
      let err = await refusedWithoutEffect(() => bob.request(openWalletRequest, { walletId: 'bob-provider', kind: 'provider' }));
      expect({ code: err.code, message: err.message }).toEqual({ code: 'forbidden', message: 'forbidden: tenant bob may not open provider wallets' });
      err = await refusedWithoutEffect(() => bob.request(openWalletRequest, { walletId: 'bob-deep', maxDebt: '2.00000001' }));
      expect(err.code).toBe('invalid_input');
      const ceiling = [{ field: 'maxDebt', rule: 'must be at most 2 GRC for a tenant (TENANT_MAX_DEBT_CEILING); the operator may set more' }];
      const issues = (e: RequestError) => e.issues?.map(({ field, rule }) => ({ field, rule }));
      expect(issues(err)).toEqual(ceiling);
      err = await refusedWithoutEffect(() => alice.request(setPolicyRequest, { walletId: 'alice-main', maxDebt: '3' }));
      expect(issues(err)).toEqual(ceiling);
      // Up to the ceiling is hers to choose; the operator may go beyond it.
      expect(await alice.request(setPolicyRequest, { walletId: 'alice-main', maxDebt: '2' })).toMatchObject({ maxDebt: '2', changed: true });
      expect(await operator.request(setPolicyRequest, { walletId: 'alice-main', maxDebt: '50' })).toMatchObject({ maxDebt: '50', changed: true });
    });

    it(`a tenant opens at most ${WALLETS_MAX} wallets, even when it asks for more at once`, async () => {
      // carol has none yet: of five opens at once exactly WALLETS_MAX pass.
      const carol = new MeshClient(nc, 10_000, 'carol');
      const results = await Promise.allSettled(
        ['c1', 'c2', 'c3', 'c4', 'c5'].map((walletId) => carol.request(openWalletRequest, { walletId: `carol-${walletId}` })),
      );
      expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(WALLETS_MAX);
      const refused = results.flatMap((r) => (r.status === 'rejected' ? [r.reason as RequestError] : []));
      expect(refused.map((e) => [e.code, e.message])).toEqual(
        refused.map(() => ['wallet_limit', `tenant carol already has ${WALLETS_MAX} wallets, the most a tenant may open (TENANT_WALLETS_MAX=${WALLETS_MAX})`]),
      );
      const err = await refusedWithoutEffect(() => carol.request(openWalletRequest, { walletId: 'carol-c6' }));
      expect(err.code).toBe('wallet_limit');
      // The operator has no limit and may act on carol's wallets.
      expect(await operator.request(openWalletRequest, { walletId: 'carol-by-operator' })).toMatchObject({ walletId: 'carol-by-operator' });
    });
  });

  describe('over HTTP', () => {
    it('wants a bearer token: none or a bad one is 401 with a JSON error', async () => {
      const none = await get('/wallets/alice-main/balance');
      expect(none).toMatchObject({
        status: 401,
        body: {
          ok: false,
          error: { code: 'unauthorized', message: 'an Authorization: Bearer <token> header is required (the operator gets one with `mesh ledger token`)' },
        },
      });
      expect(none.headers['www-authenticate']).toBe('Bearer realm="mesh-ledger"');
      const forged = `operator.${httpTokenFor(tokenKey, 'alice').split('.')[1]}`;
      for (const authorization of ['Bearer nonsense', `Bearer ${forged}`, `Basic ${Buffer.from('operator:x').toString('base64')}`]) {
        expect(await get('/totals', { authorization })).toMatchObject({ status: 401, body: { ok: false, error: { code: 'unauthorized' } } });
      }
    });

    it('`mesh ledger token` prints the tokens from the key file the ledger created: the operator reads the totals with it', async () => {
      const env = { ...process.env, MESH_FROM_SOURCE: '1', LEDGER_HTTP_TOKEN_KEY_FILE: tokenKeyFile };
      const operatorRun = await runMesh(['ledger', 'token'], env);
      expect(operatorRun).toMatchObject({ code: 0, out: `${httpTokenFor(tokenKey, 'operator')}\n` });
      expect((await get('/totals', { authorization: `Bearer ${operatorRun.out.trim()}` })).status).toBe(200);
      const aliceRun = await runMesh(['--json', 'ledger', 'token', '--tenant', 'alice'], env);
      expect(JSON.parse(aliceRun.out)).toEqual({ principal: 'alice', token: httpTokenFor(tokenKey, 'alice') });
      const missing = await runMesh(['ledger', 'token', '--key-file', join(secrets, 'none.key')], env);
      expect(missing).toMatchObject({ code: 1, err: expect.stringContaining(`no HTTP token key file at ${join(secrets, 'none.key')}`) as unknown });
    });

    it("a tenant's token reads its own wallets only; the operator's reads everything", async () => {
      expect(await get('/wallets/alice-main/balance', as('alice'))).toMatchObject({ status: 200, body: { ok: true, data: { walletId: 'alice-main' } } });
      expect(await get('/tasks/t-alice/cost', as('alice'))).toMatchObject({ status: 200, body: { data: { total: '0.1' } } });
      for (const [path, message] of [
        ['/wallets/alice-main/balance', 'forbidden: tenant bob may not read wallet alice-main'],
        ['/wallets/alice-main/statement', 'forbidden: tenant bob may not read wallet alice-main'],
        ['/tasks/t-alice/cost', 'forbidden: tenant bob may not read the cost of task t-alice'],
        ['/containers/c-alice/cost', 'forbidden: tenant bob may not read the cost of container c-alice'],
      ]) {
        expect(await get(path, as('bob'))).toMatchObject({ status: 403, body: { ok: false, error: { code: 'forbidden', message } } });
      }
      for (const path of ['/totals', '/providers/earnings', '/providers/provider/earnings', '/audit']) {
        expect(await get(path, as('alice'))).toMatchObject({ status: 403, body: { ok: false, error: { code: 'forbidden' } } });
        expect((await get(path, as('operator'))).status).toBe(200);
      }
      expect(await get('/wallets/alice-main/balance', as('operator'))).toMatchObject({ status: 200, body: { data: { walletId: 'alice-main' } } });
    });

    it('answers only loopback names and LEDGER_HTTP_ALLOWED_HOSTS in the Host header (DNS rebinding)', async () => {
      for (const host of ['localhost', `127.0.0.1:${httpPort}`, `[::1]:${httpPort}`, 'ledger.internal:8480', 'LEDGER.internal']) {
        expect({ host, status: (await get('/totals', { ...as('operator'), host })).status }).toEqual({ host, status: 200 });
      }
      for (const host of ['evil.example', `evil.example:${httpPort}`, '127.0.0.1.evil.example', 'ledger.internal.evil.example']) {
        expect(await get('/totals', { ...as('operator'), host })).toMatchObject({
          status: 421,
          body: {
            ok: false,
            error: {
              code: 'host_not_allowed',
              message: `Host "${host}" is not served: only localhost, 127.0.0.1, [::1] and the names in LEDGER_HTTP_ALLOWED_HOSTS (DNS rebinding protection)`,
            },
          },
        });
      }
    });

    it('runs one whole-log audit at a time: one more at once is refused as busy (429 over HTTP, busy over NATS), not queued', async () => {
      // A log long enough that an audit lasts while the others arrive (the audit reads every event).
      // 20 000 events: 20 streams side by side, 100 events per append (the store's most).
      await Promise.all(
        Array.from({ length: 20 }, async (_, stream) => {
          for (let batch = 0; batch < 10; batch++) {
            const events = Array.from({ length: 100 }, (_, i) => ({ id: `filler-${stream}-${batch}-${i}`, type: 'TestEvent', data: { n: i } }));
            await raw.append(`test-filler${stream}`, events, 'any');
          }
        }),
      );
      const [first, second, third] = await Promise.all([
        get('/audit', as('operator')),
        get('/audit', as('operator')),
        operator.request(auditRequest, {}, 60_000).then(
          () => 'pass',
          (e: RequestError) => e.code,
        ),
      ]);
      // Exactly one ran; the others were turned away at once (the HTTP ones as 429, the NATS one as busy).
      const outcomes = [first.status === 200 ? 'ran' : first.status, second.status === 200 ? 'ran' : second.status, third === 'pass' ? 'ran' : third];
      expect(outcomes.filter((o) => o === 'ran')).toHaveLength(1);
      expect(outcomes.filter((o) => o !== 'ran').every((o) => o === 429 || o === 'busy')).toBe(true);
      const busy = [first, second].find((r) => r.status === 429)!;
      expect(busy.body.error).toEqual({
        code: 'busy',
        message: 'busy: 1 audit(s) already running (LEDGER_AUDIT_CONCURRENCY_MAX=1); try again when it has finished',
      });
      // Once it is done, the next one runs.
      expect(await get('/audit', as('operator'))).toMatchObject({ status: 200, body: { ok: true, data: { pass: true } } });
    });
  });
});
