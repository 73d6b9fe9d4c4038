import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  EVENTS_STREAM,
  adjustRequest,
  auditRequest,
  balanceRequest,
  containerCostRequest,
  depositRequest,
  openWalletRequest,
  providerEarningsRequest,
  statementRequest,
  taskCostRequest,
  totalsRequest,
  FundsDeposited,
  UsageCredited,
  UsageDebited,
  creditedChargesOf,
  isEvent,
  isEventOf,
  walletEvents,
  withdrawRequest,
  type RequestDefinition,
} from '@mesh/contracts';
import { z } from 'zod';
import { JetStreamEventStore } from '@mesh/eventstore';
import { MeshClient, RequestError, parseTraceparent, startService, type RunningService } from '@mesh/runtime';
import { headers as natsHeaders } from 'nats';
import { NatsServerProcess, eventually, freePort } from '@mesh/testing';
import type { NatsConnection } from 'nats';
import { LedgerService } from '../../../apps/ledger/src/main';
import { httpTokenFor, readHttpTokenKey, walletEventHash } from '@mesh/audit';

/**
 * The ledger against a real nats-server: commands and refusals over NATS, charges from the meter
 * category posted on both sides, queries over NATS and HTTP, redelivery after a restart, and the
 * audit passing on a clean log and failing on a forged event and on a missing side.
 */
describe('ledger service', () => {
  let server: NatsServerProcess;
  let nc: NatsConnection;
  let raw: JetStreamEventStore;
  let client: MeshClient;
  let ledger: RunningService | undefined;
  let httpPort: number;
  let secrets: string;
  let keyFile: string;
  let tokenKeyFile: string;

  const start = async () => {
    ledger = await startService(LedgerService, {
      NATS_URL: server.url,
      LEDGER_HTTP_PORT: String(httpPort),
      LOG_LEVEL: 'error',
      LEDGER_MAC_KEY_FILE: keyFile,
      LEDGER_HTTP_TOKEN_KEY_FILE: tokenKeyFile,
    });
  };
  /** GET with the operator's bearer token (test/integration/ledger/tenancy.spec.ts covers the refusals). */
  const http = async (path: string) => {
    const key = await readHttpTokenKey(tokenKeyFile);
    const res = await fetch(`http://127.0.0.1:${httpPort}${path}`, { headers: { authorization: `Bearer ${httpTokenFor(key!, 'operator')}` } });
    return { status: res.status, body: (await res.json()) as { ok: boolean; data?: unknown; error?: unknown } };
  };
  /** A successful HTTP answer's data, parsed with the reply schema of the same query over NATS. */
  const httpReply = async <S extends z.ZodType, R extends z.ZodType>(path: string, definition: RequestDefinition<S, R>): Promise<z.output<R>> => {
    const { status, body } = await http(path);
    expect({ status, ok: body.ok }).toEqual({ status: 200, ok: true });
    return z.parse(definition.reply, body.data);
  };
  const refusal = async (promise: Promise<unknown>): Promise<RequestError> => {
    const err = await promise.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(RequestError);
    return err as RequestError;
  };
  const balance = (walletId: string) => client.request(balanceRequest, { walletId });
  let chargeSeq = 0;
  const charge = async (walletId: string, amount: string, extra: Record<string, unknown> = {}) => {
    const seq = ++chargeSeq;
    const data = {
      chargeId: `ch-c1-${seq}`,
      containerId: 'c1',
      walletId,
      functionId: 'f1',
      nodeId: 'n1',
      taskId: 't1',
      sampleId: `c1-${seq}`,
      sampleSeq: seq,
      windowStartMs: seq * 1000,
      windowEndMs: seq * 1000 + 1000,
      cpuNanos: 1_000_000,
      memoryByteMs: '1000',
      planId: 'default',
      planVersion: 1,
      currency: 'GRC',
      amount,
      remainder: '0/1',
      providerWalletId: 'provider',
      ...extra,
    };
    await raw.append('meter-c1', [{ id: `charged-${data.chargeId}`, type: 'UsageCharged', data }], 'any');
    return data;
  };
  const traceHeaders = (traceparent: string) => {
    const h = natsHeaders();
    h.set('traceparent', traceparent);
    return h;
  };
  const meterConsumerIdle = async () => {
    const jsm = await nc.jetstreamManager();
    await eventually(
      async () => {
        const info = await jsm.consumers.info(EVENTS_STREAM, 'ledger_meter');
        return info.num_pending === 0 && info.num_ack_pending === 0;
      },
      20_000,
      'the ledger meter consumer to be idle',
    );
  };

  /** `libs/audit/src/cli.ts` as its own process, the way an operator runs it. */
  const runAuditCli = (args: string[] = ['--mac-key', keyFile]) =>
    new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
      const child = spawn(process.execPath, ['-r', 'ts-node/register/transpile-only', '-r', 'tsconfig-paths/register', 'libs/audit/src/cli.ts', ...args], {
        cwd: join(__dirname, '../../..'),
        env: { ...process.env, NATS_URL: server.url },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (c) => (stdout += c));
      child.stderr.on('data', (c) => (stderr += c));
      child.once('error', reject);
      child.once('exit', (code) => resolve({ code, stdout, stderr }));
    });

  beforeAll(async () => {
    server = await NatsServerProcess.start();
    nc = await server.connect('ledger-test');
    raw = await JetStreamEventStore.connect(nc);
    client = new MeshClient(nc);
    httpPort = await freePort();
    secrets = mkdtempSync(join(tmpdir(), 'mesh-ledger-secrets-'));
    keyFile = join(secrets, 'ledger', 'ledger-mac.key'); // created by the ledger at its first start
    tokenKeyFile = join(secrets, 'ledger', 'ledger-http-token.key'); // likewise
    await start();
  });
  afterAll(async () => {
    await ledger?.stop();
    await nc?.close();
    await server?.dispose();
    rmSync(secrets, { recursive: true, force: true });
  });

  it('opens wallets, deposits idempotently by reference, withdraws and adjusts', async () => {
    const opened = await client.request(openWalletRequest, { walletId: 'alice' });
    expect(opened).toMatchObject({ walletId: 'alice', kind: 'user', currency: 'GRC', balance: '0', maxDebt: '0.5', minBalance: '0', policy: 'greedy' });
    const first = await client.request(depositRequest, { walletId: 'alice', amount: '2.5', reference: 'tx-0xabc' });
    expect(first).toMatchObject({ balance: '2.5', duplicate: false });
    const again = await client.request(depositRequest, { walletId: 'alice', amount: '2.5', reference: 'tx-0xabc' });
    expect(again).toEqual({ ...first, duplicate: true });
    expect(await client.request(withdrawRequest, { walletId: 'alice', amount: '0.5', reference: 'refund-1' })).toMatchObject({ balance: '2' });
    expect(await client.request(adjustRequest, { walletId: 'alice', amount: '-0.25', reason: 'double top-up', reference: 'adj-1' })).toMatchObject({
      balance: '1.75',
    });
    await eventually(async () => (await balance('alice')).balance === '1.75', 10_000, 'the projection');
    expect(await balance('alice')).toMatchObject({ available: '1.75', debt: '0', revision: 3 });
    expect((await raw.read('wallet-alice')).map((e) => e.type)).toEqual(['WalletOpened', 'FundsDeposited', 'FundsWithdrawn', 'BalanceAdjusted']);
  });

  it('refuses bad input with an error naming the problem, writing no event', async () => {
    const head = await raw.headPosition();
    // Thunks: each request is sent when its turn comes, so no refusal is left unhandled meanwhile.
    const cases: [() => Promise<unknown>, string, RegExp][] = [
      [() => client.requestRaw(depositRequest.subject, { walletId: 'nobody', amount: '1', reference: 'r1' }), 'unknown_wallet', /wallet nobody does not exist/],
      [() => client.requestRaw(openWalletRequest.subject, { walletId: 'alice' }), 'wallet_exists', /alice already exists/],
      [
        () => client.requestRaw(depositRequest.subject, { walletId: 'alice', amount: '1', reference: 'r2', currency: 'USD' }),
        'currency_mismatch',
        /holds GRC, not USD/,
      ],
      [() => client.requestRaw(depositRequest.subject, { walletId: 'alice', amount: '2', reference: 'tx-0xabc' }), 'reference_conflict', /already posted/],
      [() => client.requestRaw(withdrawRequest.subject, { walletId: 'alice', amount: '5', reference: 'w9' }), 'insufficient_funds', /below zero/],
      [() => client.requestRaw(adjustRequest.subject, { walletId: 'alice', amount: '-5', reason: 'x', reference: 'a9' }), 'insufficient_funds', /below zero/],
      [
        () => client.requestRaw(depositRequest.subject, { walletId: 'alice', amount: 'abc', reference: 'r3' }),
        'invalid_input',
        /amount: must be a decimal string/,
      ],
      [
        () => client.requestRaw(depositRequest.subject, { walletId: 'alice', amount: '0.123456789', reference: 'r3' }),
        'invalid_input',
        /amount: must have at most 8 decimals/,
      ],
      [() => client.requestRaw(depositRequest.subject, { walletId: 'alice', amount: '-1', reference: 'r3' }), 'invalid_input', /amount: must not be negative/],
      [
        () => client.requestRaw(depositRequest.subject, { walletId: 'alice', amount: '0', reference: 'r3' }),
        'invalid_input',
        /amount: must be greater than zero/,
      ],
      [
        () => client.requestRaw(depositRequest.subject, { walletId: 'alice', amount: '1e9', reference: 'r3' }),
        'invalid_input',
        /amount: must be a decimal string/,
      ],
      [
        () => client.requestRaw(depositRequest.subject, { walletId: 'alice', amount: '9'.repeat(16), reference: 'r3' }),
        'invalid_input',
        /amount: must be below 10\^15/,
      ],
      [() => client.requestRaw(depositRequest.subject, { walletId: 'alice', amount: 1, reference: 'r3' }), 'invalid_input', /amount: must be a decimal string/],
      [() => client.requestRaw(depositRequest.subject, { walletId: 'a.b', amount: '1', reference: 'r3' }), 'invalid_input', /walletId: must match/],
      [() => client.requestRaw(openWalletRequest.subject, { walletId: 'x'.repeat(65) }), 'invalid_input', /walletId: must match \[A-Za-z0-9_-\]\{1,64\}/],
      [
        () => client.requestRaw(depositRequest.subject, { walletId: 'alice', amount: '1', reference: 'r3', extra: 'x'.repeat(100_000) }),
        'invalid_input',
        /extra/,
      ],
      [
        () => client.requestRaw(adjustRequest.subject, { walletId: 'alice', amount: '1', reason: '', reference: 'r3' }),
        'invalid_input',
        /reason: must not be empty/,
      ],
      [
        () => client.requestRaw(adjustRequest.subject, { walletId: 'alice', amount: '1', reason: 'r'.repeat(1025), reference: 'r3' }),
        'invalid_input',
        /reason: must be at most 1024/,
      ],
    ];
    for (const [promise, code, message] of cases) {
      const err = await refusal(promise());
      expect(err.code).toBe(code);
      expect(err.message).toMatch(message);
    }
    const notJson = await nc.request(depositRequest.subject, Buffer.from('{not json'));
    expect(JSON.parse(Buffer.from(notJson.data).toString())).toMatchObject({ ok: false, error: { code: 'invalid_json' } });
    expect(await raw.headPosition()).toBe(head);
  });

  it('posts a UsageCharged on both sides and answers the projections over NATS and HTTP', async () => {
    await client.request(openWalletRequest, { walletId: 'bob', maxDebt: '1' });
    await client.request(depositRequest, { walletId: 'bob', amount: '0.1', reference: 'tx-bob-1' });
    await charge('bob', '0.04');
    const big = await charge('bob', '0.1'); // past zero: the usage already happened
    await charge('bob', '0'); // nothing to post
    await raw.append(
      'meter-c1',
      [
        {
          id: 'anomaly-1',
          type: 'UsageAnomalyRecorded',
          data: { containerId: 'c1', sampleId: 'c1-x', sampleSeq: 0, reason: 'gap', detail: 'ignored by the ledger' },
        },
      ],
      'any',
    );
    await eventually(async () => (await balance('bob')).balance === '-0.04', 15_000, 'bob debited');
    expect(await balance('bob')).toMatchObject({ available: '0', debt: '0.04', maxDebt: '1' });
    expect((await raw.read('wallet-bob')).map((e) => e.id)).toEqual(['open-bob', 'deposit-bob-tx-bob-1', 'debit-ch-c1-1', `debit-${big.chargeId}`]);
    const provider = await raw.read('wallet-provider');
    // Credits are group-committed: the two charges may share one UsageCredited or have one each.
    const credited = provider.slice(1).flatMap((e) => (isEvent(e, UsageCredited) ? creditedChargesOf(e.data) : []));
    expect(provider[0].id).toBe('open-provider');
    expect(provider.slice(1).every((e) => isEvent(e, UsageCredited) && e.id === `credit-${e.data.hash}`)).toBe(true);
    expect(credited.map((c) => c.chargeId)).toEqual(['ch-c1-1', big.chargeId]);
    expect(credited[1]).toEqual({ chargeId: big.chargeId, amount: '0.1', userWalletId: 'bob', containerId: 'c1', taskId: 't1', functionId: 'f1' });

    await eventually(
      async () => (await client.request(providerEarningsRequest, { walletId: 'provider' })).providers[0]?.earned === '0.14',
      10_000,
      'provider earnings',
    );
    const statement = await client.request(statementRequest, { walletId: 'bob' });
    expect(statement.lines.map((l) => [l.amount, l.balanceAfter, l.cause.kind])).toEqual([
      ['0', '0', 'open'],
      ['0.1', '0.1', 'deposit'],
      ['-0.04', '0.06', 'usage-debit'],
      ['-0.1', '-0.04', 'usage-debit'],
    ]);
    expect(statement.lines[2].cause).toMatchObject({ chargeId: 'ch-c1-1', taskId: 't1', containerId: 'c1', counterpartyWalletId: 'provider' });
    expect((await client.request(statementRequest, { walletId: 'bob', limit: 1, afterRevision: 1 })).lines.map((l) => l.revision)).toEqual([2]);
    expect(await client.request(taskCostRequest, { taskId: 't1' })).toMatchObject({
      total: '0.14',
      charges: 2,
      walletId: 'bob',
      containers: [{ containerId: 'c1', total: '0.14' }],
    });
    expect(await client.request(containerCostRequest, { containerId: 'c1' })).toMatchObject({
      total: '0.14',
      charges: 2,
      functionId: 'f1',
      tasks: [{ taskId: 't1', total: '0.14' }],
    });
    expect(await client.request(totalsRequest, {})).toMatchObject({ debited: '0.14', credited: '0.14', debt: '0.04', providerBalances: '0.14' });

    expect(await http('/wallets/bob/balance')).toMatchObject({ status: 200, body: { ok: true, data: { balance: '-0.04', debt: '0.04' } } });
    expect((await httpReply('/wallets/bob/statement?limit=2', statementRequest)).lines).toHaveLength(2);
    expect((await httpReply('/tasks/t1/cost', taskCostRequest)).total).toBe('0.14');
    expect((await httpReply('/containers/c1/cost', containerCostRequest)).total).toBe('0.14');
    expect((await httpReply('/providers/provider/earnings', providerEarningsRequest)).providers[0].earned).toBe('0.14');
    expect((await httpReply('/totals', totalsRequest)).credited).toBe('0.14');
    expect(await http('/wallets/nobody/balance')).toMatchObject({ status: 404, body: { ok: false, error: { code: 'unknown_wallet' } } });
    expect(await http('/wallets/a%2Eb/balance')).toMatchObject({ status: 400, body: { error: { code: 'invalid_input' } } });
    const tooMany = await http('/wallets/bob/statement?limit=5000');
    expect(tooMany).toMatchObject({ status: 400, body: { ok: false } });
    expect(JSON.stringify(tooMany.body.error)).toMatch(/limit: must be <= 1000/);
    expect((await http('/nope')).status).toBe(404);
    // Context: each debit is caused by its charge, in the charge's correlation and trace; a deposit
    // continues the trace of the request that made it.
    const charges = new Map((await raw.read('meter-c1')).map((e) => [e.id, e]));
    for (const debit of (await raw.read('wallet-bob')).filter((e) => isEvent(e, UsageDebited))) {
      const cause = charges.get(debit.causationId)!;
      expect(cause).toMatchObject({ type: 'UsageCharged', data: { chargeId: debit.data.chargeId } });
      expect(debit.correlationId).toBe(cause.correlationId);
      expect(parseTraceparent(debit.traceparent)?.traceId).toBe(parseTraceparent(cause.traceparent)?.traceId);
      expect(parseTraceparent(debit.traceparent)?.spanId).not.toBe(parseTraceparent(cause.traceparent)?.spanId);
    }
    const credit = provider[provider.length - 1];
    expect(charges.get(credit.causationId)?.type).toBe('UsageCharged');
    const traceId = 'ab'.repeat(16);
    await client.request(openWalletRequest, { walletId: 'traced' });
    await nc.request(depositRequest.subject, Buffer.from(JSON.stringify({ walletId: 'traced', amount: '0.01', reference: 'tx-traced' })), {
      headers: traceHeaders(`00-${traceId}-${'cd'.repeat(8)}-01`),
      timeout: 5000,
    });
    const [deposit] = (await raw.read('wallet-traced')).filter((e) => e.type === 'FundsDeposited');
    expect(parseTraceparent(deposit.traceparent)?.traceId).toBe(traceId);
  });

  it('leaves the balance unchanged when the same charge is delivered again after a restart', async () => {
    await meterConsumerIdle();
    const before = await balance('bob');
    const providerBefore = (await raw.read('wallet-provider')).length;
    await ledger!.stop();
    // Every meter event is delivered again (the durable consumer is gone), and the same charge
    // arrives once more as a new event, as a credit-manager replay days later would send it.
    await (await nc.jetstreamManager()).consumers.delete(EVENTS_STREAM, 'ledger_meter');
    const again = (await raw.read('meter-c1')).find((e) => e.type === 'UsageCharged')!;
    await raw.append('meter-c1', [{ id: 'charged-again-days-later', type: 'UsageCharged', data: again.data }], 'any');
    await start();
    await meterConsumerIdle();
    expect(await balance('bob')).toMatchObject({ balance: before.balance, revision: before.revision });
    expect(await raw.read('wallet-provider')).toHaveLength(providerBefore);
    const report = await client.request(auditRequest, {}, 30_000);
    expect(report).toMatchObject({ pass: true, debits: 2, credits: 2 });
    expect(report.invariants.find((i) => i.name === 'projection-matches')).toMatchObject({ pass: true });
    expect((await httpReply('/audit', auditRequest)).pass).toBe(true);

    // The command-line entry point prints the same report and exits 0 on a pass.
    const cli = await runAuditCli();
    expect(cli.code).toBe(0);
    expect(cli.stdout).toMatch(/^audit PASSED: log positions 1\.\.\d+/);
    expect(cli.stdout).toMatch(/PASS {2}books-balance/);
  });

  it('audit fails on a forged event (first broken link) and on a debit without its credit', async () => {
    const bob = await raw.read('wallet-bob');
    const last = bob[bob.length - 1];
    const lastHash = isEventOf(last, walletEvents) ? last.data.hash : undefined;
    if (!lastHash) throw new Error(`wallet-bob@${last.revision} carries no hash`);
    // A debit appended straight to the store, correctly chained but with no credit and no charge.
    const data = {
      walletId: 'bob',
      currency: 'GRC',
      balanceAfter: '-0.05',
      prevHash: lastHash,
      amount: '0.01',
      chargeId: 'ch-forged-1',
      providerWalletId: 'provider',
      containerId: 'c1',
      functionId: 'f1',
    };
    await raw.append(
      'wallet-bob',
      [{ id: 'debit-ch-forged-1', type: 'UsageDebited', data: { ...data, hash: walletEventHash('UsageDebited', data, data.prevHash) } }],
      last.revision,
    );
    let report = await client.request(auditRequest, {}, 30_000);
    const failed = () => report.invariants.filter((i) => !i.pass).map((i) => i.name);
    expect(report.pass).toBe(false);
    expect(failed()).toEqual(expect.arrayContaining(['charges-paired', 'books-balance', 'postings-have-causes']));
    expect(failed()).not.toContain('hash-chain');

    // A forged deposit with a bad prevHash: the hash chain breaks exactly there.
    await raw.append(
      'wallet-bob',
      [
        {
          id: 'forged-deposit',
          type: 'FundsDeposited',
          data: { walletId: 'bob', currency: 'GRC', balanceAfter: '999.95', prevHash: 'f'.repeat(64), amount: '1000', reference: 'forged' },
        },
      ],
      last.revision + 1,
    );
    report = await client.request(auditRequest, {}, 30_000);
    expect(failed()).toContain('hash-chain');
    expect(report.firstBrokenLink).toMatchObject({ stream: 'wallet-bob', eventId: 'forged-deposit', revision: last.revision + 2 });
    const cli = await runAuditCli();
    expect(cli.code).toBe(1);
    expect(cli.stdout).toMatch(/audit FAILED[\s\S]*FAIL {2}hash-chain[\s\S]*first broken link: wallet-bob revision \d+ \(event forged-deposit/);
  });
  it('a forged deposit with a correct hash chain, published straight on the wallet subject: the audit names it, the ledger refuses the wallet', async () => {
    await client.request(openWalletRequest, { walletId: 'carol' });
    await client.request(depositRequest, { walletId: 'carol', amount: '1', reference: 'tx-carol-1' });
    const carol = await raw.read('wallet-carol');
    const last = carol[carol.length - 1];
    if (!isEvent(last, FundsDeposited) || !last.data.hash) throw new Error(`wallet-carol@${last.revision}: expected a hashed FundsDeposited`);
    expect(last.data.macKeyId).toMatch(/^k\d{8}-[0-9a-f]{8}$/);
    // Everything the ledger would write, except the MAC (which needs the ledger's key).
    const data = { walletId: 'carol', currency: 'GRC', balanceAfter: '1001', amount: '1000', reference: 'forged-1', prevHash: last.data.hash };
    const revision = last.revision + 1;
    const envelope = {
      id: 'deposit-carol-forged-1',
      type: 'FundsDeposited',
      stream: 'wallet-carol',
      occurredAt: new Date().toISOString(),
      schemaVersion: 1,
      correlationId: 'deposit-carol-forged-1',
      causationId: 'deposit-carol-forged-1',
      data: { ...data, hash: walletEventHash('FundsDeposited', data, data.prevHash) },
      revision,
    };
    const jsm = await nc.jetstreamManager();
    const tail = await jsm.streams.getMessage(EVENTS_STREAM, { last_by_subj: 'mesh.events.wallet.carol' });
    const h = natsHeaders();
    h.set('Nats-Msg-Id', envelope.id);
    h.set('Nats-Expected-Last-Subject-Sequence', String(tail.seq));
    h.set('Mesh-Revision', String(revision));
    h.set('Mesh-Type', envelope.type);
    await nc.jetstream().publish('mesh.events.wallet.carol', Buffer.from(JSON.stringify(envelope)), { headers: h });
    expect((await raw.read('wallet-carol')).map((e) => e.id)).toContain('deposit-carol-forged-1');

    // The audit (the ledger's, with its key) passes the hash chain but fails wallet-mac, naming the event.
    const report = await client.request(auditRequest, {}, 30_000);
    expect(report.invariants.find((i) => i.name === 'hash-chain')?.examples.join('\n') ?? '').not.toMatch(/wallet-carol/);
    const mac = report.invariants.find((i) => i.name === 'wallet-mac');
    expect(mac?.pass).toBe(false);
    expect(mac?.examples).toContainEqual(
      expect.stringMatching(new RegExp(`^wallet-carol@${revision} \\(deposit-carol-forged-1, position \\d+\\): carries no MAC`)),
    );
    const cli = await runAuditCli();
    expect(cli.code).toBe(1);
    expect(cli.stdout).toMatch(new RegExp(`FAIL {2}wallet-mac[\\s\\S]*- wallet-carol@${revision} \\(deposit-carol-forged-1`));

    // The wallet's next command is refused with the event named, and nothing is written.
    const head = await raw.headPosition();
    const err = await refusal(client.request(depositRequest, { walletId: 'carol', amount: '1', reference: 'tx-carol-2' }));
    expect(err.code).toBe('wallet_integrity');
    expect(err.message).toMatch(new RegExp(`^wallet-carol revision ${revision} \\(event deposit-carol-forged-1\\) carries no MAC`));
    expect(await raw.headPosition()).toBe(head);
    // Other wallets carry on.
    expect(await client.request(depositRequest, { walletId: 'alice', amount: '1', reference: 'tx-after-forgery' })).toMatchObject({ duplicate: false });
  });
});
