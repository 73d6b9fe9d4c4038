import { randomUUID } from 'node:crypto';
import { mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { headers as natsHeaders, type NatsConnection } from 'nats';
import { EVENTS_STREAM, deadLetterReplaySubject, inputBucketOf, outputBucketOf, tenantEventsPrefix, tenantInboxPrefix, tenantSubject } from '@mesh/contracts';
import { runMesh } from '@mesh/testing';
import { SecurityHarness } from './harness';

/**
 * The trust boundary enforced by nats-server itself (docs/security.md): every attack below is refused
 * by the server, writes no event and changes no balance. Real nats-server with the generated
 * authorization block, the five services as processes with their own credentials.
 */
const harness = new SecurityHarness();
const enc = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));

/** A self-consistent forged event of `type` on `subject`, as the event store would write it. */
function forgedEvent(stream: string, type: string, data: Record<string, unknown>) {
  const id = `forged-${randomUUID()}`;
  const body = { id, stream, type, data, schemaVersion: 1, occurredAt: new Date().toISOString(), revision: 0 };
  const h = natsHeaders();
  h.set('Nats-Msg-Id', id);
  h.set('Mesh-Revision', '0');
  h.set('Mesh-Type', type);
  return { body: enc(body), headers: h };
}

const FORGERIES: { category: string; type: string; data: Record<string, unknown> }[] = [
  { category: 'wallet', type: 'FundsDeposited', data: { walletId: 'alice', amount: '1000000', reference: 'forged' } },
  { category: 'usage', type: 'UsageCharged', data: { walletId: 'bob', amount: '1000' } },
  { category: 'standing', type: 'StandingChanged', data: { walletId: 'alice', standing: 'good' } },
  { category: 'scaling', type: 'ScalingDecided', data: { functionId: 'f', containers: 100 } },
  { category: 'task', type: 'TaskDispatched', data: { taskId: 't', nodeId: 'n' } },
  { category: 'execution', type: 'ExecutionSucceeded', data: { executionId: 'e', taskId: 't' } },
  { category: 'meter', type: 'MeterSampled', data: { walletId: 'alice' } },
  { category: 'function', type: 'FunctionDeployed', data: { functionId: 'f' } },
  { category: 'node', type: 'NodeRegistered', data: { nodeId: 'n' } },
  { category: 'container', type: 'ContainerStarted', data: { containerId: 'c' } },
  { category: 'deadletter', type: 'MessageReplayed', data: {} },
];

/** Resolves with the refusal of a JetStream publish (a permission violation or no ack), never with an ack. */
async function expectPublishRefused(nc: NatsConnection, subject: string, payload: Uint8Array, headers?: ReturnType<typeof natsHeaders>) {
  await expect(nc.jetstream().publish(subject, payload, { headers, timeout: 2000 })).rejects.toThrow(/permission|timeout|no responders|503/i);
}

/** A core request that the server refuses: nats.js rejects it with the permission violation. */
async function expectRequestRefused(nc: NatsConnection, subject: string, body: unknown = {}) {
  await expect(nc.request(subject, enc(body), { timeout: 2000 })).rejects.toThrow(/permission/i);
}

/** A subscription the server refuses: the violation closes the subscription with an error. */
async function expectSubscribeRefused(nc: NatsConnection, subject: string) {
  const sub = nc.subscribe(subject);
  const ended = (async () => {
    for await (const _ of sub) return 'message';
    return 'closed';
  })();
  await expect(ended).rejects.toThrow(/permission/i);
}

describe('NATS permissions: the trust boundary', () => {
  let alice: NatsConnection;
  let scaler: NatsConnection;

  beforeAll(async () => {
    await harness.start(['alice', 'bob']);
    alice = await harness.connectAs({ kind: 'tenant', tenantId: 'alice' });
    scaler = await harness.connectAs({ kind: 'service', name: 'scaler' });
    // A wallet with money to steal or inflate.
    await harness.stack.client.requestRaw('mesh.api.ledger.open-wallet', { walletId: 'alice' });
    await harness.stack.client.requestRaw('mesh.api.ledger.deposit', { walletId: 'alice', amount: '10', reference: 'seed' });
  }, 300_000);
  afterAll(async () => {
    await harness.stop();
  }, 60_000);

  it('the five services run under their identities without a single permission violation', () => {
    expect(harness.violations()).toEqual([]);
  });

  it('an anonymous connection is refused', async () => {
    await expect(harness.server.connectAs({ kind: 'anonymous' })).rejects.toThrow(/authorization violation/i);
  });

  it('a tenant cannot write an event of any category', async () => {
    await harness.expectNoEffect(async () => {
      for (const f of FORGERIES) {
        const { body, headers } = forgedEvent(`${f.category}-x`, f.type, f.data);
        await expectPublishRefused(alice, `mesh.events.${f.category}.x`, body, headers);
      }
    });
  });

  it('a tenant cannot call operator-only commands and queries', async () => {
    await harness.expectNoEffect(async () => {
      const operatorOnly = [
        'mesh.api.ledger.deposit',
        'mesh.api.ledger.adjust',
        'mesh.api.ledger.withdraw',
        'mesh.api.credit-manager.set-price-plan',
        'mesh.query.ledger.audit',
        'mesh.query.ledger.totals',
        'mesh.api.ledger.health',
        deadLetterReplaySubject('ledger', 'ledger_meter'),
      ];
      for (const subject of operatorOnly) await expectRequestRefused(alice, subject, { walletId: 'alice', amount: '1000', reference: 'x' });
      // The tenant copy of an operator-only request: NATS lets it through (alice's own prefix), no service listens.
      await expect(
        alice.request(tenantSubject('alice', 'mesh.api.ledger.deposit'), enc({ walletId: 'alice', amount: '1000', reference: 'y' }), { timeout: 2000 }),
      ).rejects.toThrow(/no responders|503|timeout/i);
    });
  });

  it('a tenant cannot publish as another tenant, nor listen to anything but its own inbox and feed', async () => {
    await harness.expectNoEffect(async () => {
      await expectRequestRefused(alice, tenantSubject('bob', 'mesh.query.ledger.balance'), { walletId: 'bob' });
      await expectRequestRefused(alice, tenantSubject('bob', 'mesh.api.ledger.open-wallet'), { walletId: 'bob2' });
    });
    for (const subject of [
      'mesh.events.>',
      '_INBOX.>',
      `${tenantInboxPrefix('bob')}.>`,
      `${tenantEventsPrefix('bob')}.>`,
      'mesh.>',
      '>',
      'mesh.heartbeat.node.*',
    ]) {
      const nc = await harness.connectAs({ kind: 'tenant', tenantId: 'alice' });
      await expectSubscribeRefused(nc, subject);
    }
  });

  it('a tenant cannot read, change or delete the event log through the JetStream API', async () => {
    await harness.expectNoEffect(async () => {
      const api = ['INFO', 'MSG.GET', 'PURGE', 'DELETE', 'UPDATE', 'MSG.DELETE'].map((op) => `$JS.API.STREAM.${op}.${EVENTS_STREAM}`);
      api.push(`$JS.API.DIRECT.GET.${EVENTS_STREAM}`, `$JS.API.CONSUMER.CREATE.${EVENTS_STREAM}`, `$JS.API.CONSUMER.DURABLE.CREATE.${EVENTS_STREAM}.steal`);
      for (const subject of api) await expectRequestRefused(alice, subject, { seq: 1 });
    });
  });

  it("a tenant has no JetStream access at all: not to its own buckets, not to another tenant's, not the API itself", async () => {
    await harness.expectNoEffect(async () => {
      await expectRequestRefused(alice, '$JS.API.INFO');
      await expectRequestRefused(alice, '$JS.API.STREAM.NAMES');
      for (const bucket of [inputBucketOf('alice'), outputBucketOf('alice'), inputBucketOf('bob'), outputBucketOf('bob')]) {
        await expectRequestRefused(alice, `$JS.API.STREAM.INFO.OBJ_${bucket}`);
        await expectRequestRefused(alice, `$JS.API.CONSUMER.CREATE.OBJ_${bucket}`, { stream_name: `OBJ_${bucket}`, config: {} });
        await expectPublishRefused(alice, `$O.${bucket}.C.x`, enc('x'));
      }
      // The way nats.js reaches a bucket: refused at its first API call.
      await expect((async () => (await alice.jetstream().views.os(inputBucketOf('alice'))).getBlob('in-1'))()).rejects.toThrow(/permission/i);
    });
  });

  it("a service cannot write another service's events (the scaler on wallet)", async () => {
    await harness.expectNoEffect(async () => {
      const { body, headers } = forgedEvent('wallet-alice', 'FundsDeposited', { walletId: 'alice', amount: '1000000', reference: 'scaler' });
      await expectPublishRefused(scaler, 'mesh.events.wallet.alice', body, headers);
      await expectRequestRefused(scaler, 'mesh.api.ledger.deposit', { walletId: 'alice', amount: '1', reference: 's' });
      await expectRequestRefused(scaler, `$JS.API.STREAM.PURGE.${EVENTS_STREAM}`);
    });
  });

  it('`mesh tenant create` makes a tenant the CLI then acts as with --creds; operator-only commands are refused for it', async () => {
    const env = { ...process.env, NATS_URL: harness.server.url, MESH_DATA_DIR: harness.server.dataDir!, MESH_FROM_SOURCE: '1' };
    const out = join(mkdtempSync(join(tmpdir(), 'mesh-creds-')), 'carol.json');
    const created = await runMesh(['tenant', 'create', 'carol', '--out', out], env);
    expect(created).toMatchObject({ code: 0 });
    expect(statSync(out).mode & 0o777).toBe(0o600);
    const opened = await runMesh(['--creds', out, 'wallet', 'open', 'carol'], env);
    expect(opened).toMatchObject({ code: 0 });
    await harness.expectNoEffect(async () => {
      const deposit = await runMesh(['--creds', out, 'wallet', 'deposit', 'carol', '4'], env);
      expect(deposit.code).toBe(1);
      expect(deposit.err).toMatch(/forbidden|permission/i);
    });
    const listed = await runMesh(['--json', 'tenant', 'list'], env);
    const { tenants } = JSON.parse(listed.out) as { tenants: { tenant: string }[] };
    expect(tenants.map((t) => t.tenant)).toContain('carol');
    const bad = await runMesh(
      ['--creds', harness.credsPath({ kind: 'tenant', tenantId: 'alice' }).replace('alice', 'nobody'), 'wallet', 'balance', 'carol'],
      env,
    );
    expect(bad.code).toBe(1);
  });
});
