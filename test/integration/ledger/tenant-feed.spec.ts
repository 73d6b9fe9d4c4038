import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  EVENTS_STREAM,
  GENESIS_HASH,
  healthSubject,
  parseStreamName,
  tenantEventSubject,
  type ExecutionStarted,
  type FunctionDeployed,
  type HealthReply,
  type NewEvent,
  type NewEventOf,
  type NodeRegistered,
  type ScalingDecided,
  type TaskSubmitted,
  type TaskSucceeded,
  type WalletOpened,
} from '@mesh/contracts';
import { JetStreamEventStore } from '@mesh/eventstore';
import { startService, type RunningService } from '@mesh/runtime';
import { NatsServerProcess, containerStartedEvent, eventually, resourceSampledEvent, suspensionData, type ContainerRef } from '@mesh/testing';
import type { Msg, NatsConnection, Subscription } from 'nats';
import { LedgerService } from '../../../apps/ledger/src/main';
import { TenantFeed } from '../../../apps/ledger/src/tenant-feed/tenant-feed';

jest.setTimeout(120_000);

/** The ledger's tenant-feed consumers, one per category (`ledger_<category>_tenantfeed`). */
const FEED_CATEGORIES = ['wallet', 'function', 'task', 'execution', 'container', 'usage', 'scaling', 'meter', 'standing'];
const feedConsumer = (category: string) => `ledger_${category}_tenantfeed`;

/** One event as a subscriber of a tenant feed received it. */
interface Received {
  subject: string;
  data: Uint8Array;
  headers: Record<string, string | undefined>;
  id: string;
}

/** Everything published on `subject` (a tenant's feed), in arrival order. */
class FeedSubscriber {
  readonly received: Received[] = [];
  private readonly sub: Subscription;

  constructor(nc: NatsConnection, subject: string) {
    this.sub = nc.subscribe(subject, { callback: (_err, m) => this.received.push(FeedSubscriber.of(m)) });
  }

  static of(m: Msg): Received {
    const header = (name: string) => m.headers?.get(name) || undefined;
    return {
      subject: m.subject,
      data: m.data,
      headers: { 'Nats-Msg-Id': header('Nats-Msg-Id'), 'Mesh-Type': header('Mesh-Type'), 'Mesh-Revision': header('Mesh-Revision') },
      id: (JSON.parse(m.string()) as { id: string }).id,
    };
  }

  /** Distinct event ids received (a redelivered event may arrive twice: subscribers dedupe by id). */
  ids(): string[] {
    return [...new Set(this.received.map((r) => r.id))].sort();
  }

  unsubscribe(): void {
    this.sub.unsubscribe();
  }
}

const walletOpened = (walletId: string, tenantId?: string): NewEventOf<typeof WalletOpened> => ({
  id: `opened-${walletId}`,
  type: 'WalletOpened',
  data: {
    walletId,
    currency: 'GRC',
    balanceAfter: '0',
    prevHash: GENESIS_HASH,
    kind: 'user',
    maxDebt: '0',
    minBalance: '0',
    policy: 'greedy',
    openedAtMs: 1,
    ...(tenantId ? { tenantId } : {}),
  },
});

const functionDeployed = (functionId: string, tenantId?: string): NewEventOf<typeof FunctionDeployed> => ({
  id: `deployed-${functionId}-1`,
  type: 'FunctionDeployed',
  data: {
    functionId,
    version: 1,
    image: 'mesh/task-base:latest',
    script: 'echo hi',
    cpuMinMillis: 250,
    cpuMaxMillis: 1000,
    cpuInitialMillis: 500,
    memoryBytes: 64 * 1024 * 1024,
    timeoutMs: 10_000,
    network: false,
    maxAttempts: 1,
    ...(tenantId ? { tenantId } : {}),
  },
});

const taskSubmitted = (taskId: string, ref: { walletId: string; functionId: string }, tenantId?: string): NewEventOf<typeof TaskSubmitted> => ({
  id: `submitted-${taskId}`,
  type: 'TaskSubmitted',
  data: {
    taskId,
    walletId: ref.walletId,
    functionId: ref.functionId,
    input: { inline: '' },
    priority: 0,
    maxAttempts: 1,
    submittedAtMs: 1,
    ...(tenantId ? { tenantId } : {}),
  },
});

const executionStarted = (executionId: string, taskId: string, ref: ContainerRef): NewEventOf<typeof ExecutionStarted> => ({
  id: `started-${executionId}`,
  type: 'ExecutionStarted',
  data: { executionId, taskId, attempt: 1, ...ref, startedAtMs: 1, warm: false },
});

const taskSucceeded = (taskId: string, ref: { walletId: string; functionId: string }, executionId: string): NewEventOf<typeof TaskSucceeded> => ({
  id: `succeeded-${taskId}`,
  type: 'TaskSucceeded',
  data: {
    taskId,
    walletId: ref.walletId,
    functionId: ref.functionId,
    attempt: 1,
    executionId,
    outputRef: { bucket: 'mesh-output-alice', key: taskId },
    durationMs: 5,
  },
});

const scalingDecided = (ref: ContainerRef): NewEventOf<typeof ScalingDecided> => ({
  id: `scale-${ref.containerId}-1`,
  type: 'ScalingDecided',
  data: {
    decisionId: `scale-${ref.containerId}-1`,
    ...ref,
    fromCpuMillis: 500,
    toCpuMillis: 1000,
    fromMemoryBytes: 64 * 1024 * 1024,
    toMemoryBytes: 64 * 1024 * 1024,
    reason: 'scale-up',
    basedOnSampleSeqs: [1],
    decidedAtMs: 1,
  },
});

const nodeRegistered = (nodeId: string): NewEventOf<typeof NodeRegistered> => ({
  id: `registered-${nodeId}`,
  type: 'NodeRegistered',
  data: { nodeId, cpuMillis: 4000, memoryBytes: 1024 * 1024 * 1024, labels: {}, registeredAtMs: 1 },
});

/** Samples written while the ledger is stopped mid-way through them. */
const MID_WAY_SAMPLES = 300;
const LIMITS = { cpuMillis: 500, memoryBytes: 64 * 1024 * 1024 };
const sample = (ref: ContainerRef, seq: number) =>
  resourceSampledEvent(ref, {
    seq,
    windowEndMs: 1000 * (seq + 1),
    cpuNanos: 1000,
    memoryBytes: 1024,
    cpuLimitMillis: 500,
    memoryLimitBytes: LIMITS.memoryBytes,
  });

/**
 * The ledger's tenant feed against a real nats-server: events of two tenants and of the operator
 * are written straight to the store (as the scheduler, container-manager, scaler and credit-manager
 * would write them); a subscriber on `mesh.tenant.alice.events.>` receives exactly alice's wallet,
 * function, task, execution, container, usage, scaling and standing events (byte for byte, with their
 * headers, on `mesh.tenant.alice.events.<category>.<id>`) and nothing of bob's or the operator's.
 * The ledger is then stopped while events are still being written and started again (its owner maps
 * empty): every event written meanwhile still arrives (duplicates allowed, told apart by id).
 */
describe('ledger tenant feed', () => {
  let server: NatsServerProcess;
  let nc: NatsConnection;
  let raw: JetStreamEventStore;
  let ledger: RunningService | undefined;
  let secrets: string;
  let alice: FeedSubscriber;
  let bob: FeedSubscriber;
  let everyone: FeedSubscriber;
  /** Every event written, by owner: what each feed must carry (the operator's: none). */
  const written: Record<'alice' | 'bob' | 'operator', { stream: string; id: string }[]> = { alice: [], bob: [], operator: [] };

  const start = async () => {
    ledger = await startService(LedgerService, {
      NATS_URL: server.url,
      LEDGER_HTTP_PORT: '0',
      LOG_LEVEL: 'error',
      LEDGER_MAC_KEY_FILE: join(secrets, 'ledger-mac.key'),
    });
  };
  const write = async (owner: keyof typeof written, stream: string, events: NewEvent[]) => {
    await raw.append(stream, events, 'any');
    written[owner].push(...events.map((e) => ({ stream, id: e.id })));
  };
  /** Every feed consumer has handled everything in the log, and what it published has reached this connection. */
  const feedCaughtUp = async () => {
    const jsm = await nc.jetstreamManager();
    await eventually(
      async () => {
        for (const category of FEED_CATEGORIES) {
          const info = await jsm.consumers.info(EVENTS_STREAM, feedConsumer(category));
          if (info.num_pending > 0 || info.num_ack_pending > 0) return false;
        }
        return true;
      },
      60_000,
      'the tenant feed consumers to be idle',
    );
    // The ledger publishes a copy before it acks the event, on the same connection, so the server
    // has routed every copy by now; a round trip on ours delivers what it routed to us before.
    await nc.flush();
  };
  const ids = (owner: keyof typeof written) => [...new Set(written[owner].map((e) => e.id))].sort();

  beforeAll(async () => {
    server = await NatsServerProcess.start();
    nc = await server.connect('tenant-feed-test');
    raw = await JetStreamEventStore.connect(nc);
    secrets = mkdtempSync(join(tmpdir(), 'mesh-tenant-feed-'));
    await start();
    alice = new FeedSubscriber(nc, 'mesh.tenant.alice.events.>');
    bob = new FeedSubscriber(nc, 'mesh.tenant.bob.events.>');
    everyone = new FeedSubscriber(nc, 'mesh.tenant.*.events.>');
    await nc.flush();
  });
  afterAll(async () => {
    await ledger?.stop();
    await nc?.close();
    await server?.dispose();
    if (secrets) rmSync(secrets, { recursive: true, force: true });
  });

  const aliceContainer: ContainerRef = { containerId: 'c-alice', nodeId: 'n1', walletId: 'w-alice', functionId: 'f-alice' };
  const bobContainer: ContainerRef = { containerId: 'c-bob', nodeId: 'n1', walletId: 'w-bob', functionId: 'f-bob' };
  const operatorContainer: ContainerRef = { containerId: 'c-op', nodeId: 'n1', walletId: 'w-op', functionId: 'f-op' };

  it("a tenant's subscriber receives exactly its own events, unchanged, and none of another tenant's or the operator's", async () => {
    await write('alice', 'wallet-w-alice', [walletOpened('w-alice', 'alice')]);
    await write('bob', 'wallet-w-bob', [walletOpened('w-bob', 'bob')]);
    await write('operator', 'wallet-w-op', [walletOpened('w-op')]);
    await write('alice', 'function-f-alice', [functionDeployed('f-alice', 'alice')]);
    await write('bob', 'function-f-bob', [functionDeployed('f-bob', 'bob')]);
    await write('operator', 'function-f-op', [functionDeployed('f-op')]);
    await write('operator', 'node-n1', [nodeRegistered('n1')]);
    await write('alice', 'task-t-alice', [taskSubmitted('t-alice', aliceContainer, 'alice')]);
    await write('bob', 'task-t-bob', [taskSubmitted('t-bob', bobContainer, 'bob')]);
    await write('operator', 'task-t-op', [taskSubmitted('t-op', operatorContainer)]);
    for (const [owner, ref] of [
      ['alice', aliceContainer],
      ['bob', bobContainer],
      ['operator', operatorContainer],
    ] as const) {
      await write(owner, `container-${ref.containerId}`, [containerStartedEvent(ref, LIMITS)]);
      await write(owner, `usage-${ref.containerId}`, [sample(ref, 1), sample(ref, 2)]);
      await write(owner, `scaling-${ref.containerId}`, [scalingDecided(ref)]);
      await write(owner, `standing-${ref.walletId}`, [
        { id: `standing-${ref.walletId}-1`, type: 'StandingChanged', data: suspensionData(ref.walletId, { eventId: 'x', revision: 0 }, 1) },
      ]);
    }
    await write('alice', 'execution-e-alice', [executionStarted('e-alice', 't-alice', aliceContainer)]);
    await write('operator', 'execution-e-op', [executionStarted('e-op', 't-op', operatorContainer)]);
    await feedCaughtUp();

    expect(alice.ids()).toEqual(ids('alice'));
    expect(bob.ids()).toEqual(ids('bob'));
    // Nothing of the operator's on any tenant's feed.
    expect(everyone.ids()).toEqual([...ids('alice'), ...ids('bob')].sort());

    // Each copy is the stored message: same bytes, same headers, on the tenant's subject of its stream.
    const jsm = await nc.jetstreamManager();
    for (const { stream, id } of written.alice) {
      const [event] = (await raw.read(stream)).filter((e) => e.id === id);
      const stored = await jsm.streams.getMessage(EVENTS_STREAM, { seq: Number(event.position) });
      const { category, id: streamId } = parseStreamName(stream);
      const copies = alice.received.filter((r) => r.id === id);
      expect(copies.length).toBeGreaterThan(0);
      for (const copy of copies) {
        expect(copy.subject).toBe(tenantEventSubject('alice', category, streamId));
        expect(Buffer.from(copy.data).equals(Buffer.from(stored.data))).toBe(true);
        expect(copy.headers).toEqual({ 'Nats-Msg-Id': id, 'Mesh-Type': event.type, 'Mesh-Revision': String(event.revision) });
      }
    }

    // The feed's positions are in the ledger's health, one per category.
    const reply = JSON.parse((await nc.request(healthSubject('ledger'), '{}', { timeout: 10_000 })).string()) as { ok: boolean; data: HealthReply };
    const head = await raw.headPosition();
    expect(Object.keys(reply.data.positions)).toEqual(
      expect.arrayContaining(['ledger_wallet_tenantfeed', 'ledger_usage_tenantfeed', 'ledger_execution_tenantfeed']),
    );
    expect(BigInt(reply.data.positions.ledger_usage_tenantfeed)).toBeLessThanOrEqual(head);
  });

  it('loses no event across a restart of the ledger: what was written while it was stopping or down arrives after it starts again', async () => {
    const before = alice.received.length;
    // Samples written one after the other while the feed follows them; the ledger is stopped as soon
    // as the first reaches alice, so the feed is mid-way through them (handled, in hand, or not yet
    // delivered) and the writer goes on while the ledger stops and is down ...
    const moreSamples = Array.from({ length: MID_WAY_SAMPLES }, (_, i) => sample(aliceContainer, 3 + i));
    const writing = (async () => {
      for (const [i, s] of moreSamples.entries()) {
        await write('alice', 'usage-c-alice', [s]);
        if (i % 50 === 0) await write('bob', 'usage-c-bob', [sample(bobContainer, 3 + i / 50)]);
      }
    })();
    await eventually(() => alice.received.slice(before).some((r) => r.id === moreSamples[0].id), 30_000, 'the first sample on alice’s feed');
    await ledger!.stop();
    ledger = undefined;
    const handledBeforeStop = new Set(alice.received.slice(before).map((r) => r.id)).size;
    await writing;
    expect(handledBeforeStop).toBeLessThan(MID_WAY_SAMPLES); // really mid-way: the rest comes after the restart
    // ... and while it is down: a second container and the task's end (owners the restarted ledger has not seen).
    const second: ContainerRef = { ...aliceContainer, containerId: 'c-alice-2' };
    await write('alice', 'container-c-alice-2', [containerStartedEvent(second, LIMITS)]);
    await write('alice', 'usage-c-alice-2', [sample(second, 1)]);
    await write('alice', 'task-t-alice', [taskSucceeded('t-alice', aliceContainer, 'e-alice')]);
    await write('bob', 'usage-c-bob', [sample(bobContainer, 3 + MID_WAY_SAMPLES)]);
    await write('operator', 'usage-c-op', [sample(operatorContainer, 3)]);
    await start();
    await feedCaughtUp();

    expect(alice.ids()).toEqual(ids('alice'));
    expect(bob.ids()).toEqual(ids('bob'));
    expect(everyone.ids()).toEqual([...ids('alice'), ...ids('bob')].sort());
    // Some may have come twice (handled before the stop, acked after it): the copies are the same message.
    const copiesOf = (id: string) => new Set(alice.received.filter((r) => r.id === id).map((r) => Buffer.from(r.data).toString('base64')));
    expect(alice.received.slice(before).filter((r) => copiesOf(r.id).size !== 1)).toEqual([]);
  });

  it('republishes from the stored message when it has no delivery (an operator replaying a dead letter)', async () => {
    const [event] = await raw.read('container-c-alice');
    const stored = await (await nc.jetstreamManager()).streams.getMessage(EVENTS_STREAM, { seq: Number(event.position) });
    const before = alice.received.length;
    await ledger!.app.get(TenantFeed).republish(event, undefined);
    await eventually(() => alice.received.length > before, 10_000, 'the copy on alice’s feed');
    const [copy] = alice.received.slice(before);
    expect(copy.subject).toBe(tenantEventSubject('alice', 'container', 'c-alice'));
    expect(Buffer.from(copy.data).equals(Buffer.from(stored.data))).toBe(true);
    expect(copy.headers).toEqual({ 'Nats-Msg-Id': event.id, 'Mesh-Type': event.type, 'Mesh-Revision': String(event.revision) });
  });
});
