import { connect, type NatsConnection } from 'nats';
import {
  NodeRegistered,
  StandingChanged,
  WalletOpened,
  eventOf,
  heartbeatSubject,
  nodesRequest,
  taskRequest,
  tenantInboxPrefix,
  type EventData,
  type EventDefinition,
  type NodeHeartbeat,
} from '@mesh/contracts';
import { JetStreamEventStore } from '@mesh/eventstore';
import { MeshClient, encodeJson, startService, type RunningService } from '@mesh/runtime';
import { NatsServerProcess, eventually } from '@mesh/testing';
import { SchedulerService } from '../../../apps/scheduler/src/main';

/**
 * One scheduler on a real nats-server, with the rest of the mesh simulated: the ledger, the
 * credit-manager and the container-managers are played by appending their events straight into
 * the store and publishing node heartbeats on core NATS. Shared by the scheduler integration specs.
 */
export const GiB = 1024 ** 3;
/** How often a simulated node beats (well under every NODE_LOST_AFTER_MS the specs use). */
const BEAT_EVERY_MS = 200;

type Standing = 'normal' | 'low' | 'overdrawn' | 'suspended';
type Policy = 'greedy' | 'conservative';

export interface SchedulerHarnessOptions {
  /** Name of the test's own NATS connection. */
  connectionName: string;
  /** The scheduler's environment besides NATS_URL. */
  env: Record<string, string>;
  /** `minBalance` of the wallets and standings the harness writes. */
  minBalance: string;
}

export class SchedulerHarness {
  server!: NatsServerProcess;
  nc!: NatsConnection;
  store!: JetStreamEventStore;
  client!: MeshClient;
  scheduler!: RunningService;
  /** The simulated nodes that beat (a node taken out of it falls silent). */
  readonly beating = new Set<string>();
  /** The idle warm containers each simulated node reports. */
  readonly idle = new Map<string, { walletId: string; functionId: string; containerId: string }[]>();
  /** What each simulated node lists as running; a node absent here sends no list (an older node, never suspected). */
  readonly running = new Map<string, { taskId: string; executionId: string }[]>();
  private beatTimer: NodeJS.Timeout | undefined;
  private standings = 0;
  private readonly tenantConnections: NatsConnection[] = [];

  constructor(private readonly options: SchedulerHarnessOptions) {}

  async open(): Promise<void> {
    this.server = await NatsServerProcess.start();
    this.nc = await this.server.connect(this.options.connectionName);
    this.store = await JetStreamEventStore.connect(this.nc);
    this.client = new MeshClient(this.nc);
    this.beatTimer = setInterval(() => this.beating.forEach(this.beat), BEAT_EVERY_MS);
    this.scheduler = await this.startScheduler();
  }

  /**
   * A client of `tenantId` on a connection with the tenant's inbox prefix: services answer a
   * tenant's request only there (libs/runtime/src/transport.ts replyAllowed), as its credentials
   * make it in production (no NATS auth here: the subject names the tenant).
   */
  async tenantClient(tenantId: string, timeoutMs = 5000): Promise<MeshClient> {
    const nc = await connect({ servers: this.server.url, name: `${this.options.connectionName}-${tenantId}`, inboxPrefix: tenantInboxPrefix(tenantId) });
    this.tenantConnections.push(nc);
    return new MeshClient(nc, timeoutMs, tenantId);
  }

  async close(): Promise<void> {
    clearInterval(this.beatTimer);
    for (const nc of this.tenantConnections) await nc.drain().catch(() => undefined);
    await this.scheduler?.stop();
    await this.nc?.drain().catch(() => undefined);
    await this.server?.dispose();
  }

  /** Starts a scheduler (again, after a stop) and waits until it answers requests. */
  startScheduler = async (): Promise<RunningService> => {
    const running = await startService(SchedulerService, { NATS_URL: this.server.url, ...this.options.env });
    // startService returns before the server has processed the request subscriptions: a round trip
    // on the service's own connection makes sure they are in place before we ask.
    await running.nc.flush();
    return running;
  };

  append = async <D extends EventDefinition>(stream: string, definition: D, id: string, data: EventData<D>): Promise<void> => {
    await this.store.append(stream, [eventOf(definition, id, data)], 'any');
  };

  beat = (nodeId: string): void => {
    const runningExecutions = this.running.get(nodeId);
    const heartbeat: NodeHeartbeat = {
      nodeId,
      atMs: Date.now(),
      cpuMillis: 8000,
      memoryBytes: 16 * GiB,
      usedCpuMillis: 0,
      usedMemoryBytes: 0,
      runningContainers: 0,
      idleContainers: this.idle.get(nodeId) ?? [],
      ...(runningExecutions ? { runningExecutions } : {}),
    };
    this.nc.publish(heartbeatSubject(nodeId), encodeJson(heartbeat));
  };

  /** Registers a simulated node (8 CPUs, 16 GiB) and starts its beats. */
  registerNode = async (nodeId: string): Promise<void> => {
    await this.append(`node-${nodeId}`, NodeRegistered, `${nodeId}-registered-${Date.now()}`, {
      nodeId,
      cpuMillis: 8000,
      memoryBytes: 16 * GiB,
      labels: {},
      registeredAtMs: Date.now(),
    });
    this.beating.add(nodeId);
    this.beat(nodeId);
  };

  /** Waits until the scheduler sees `count` live nodes. */
  liveNodes = (count: number): Promise<unknown> =>
    eventually(async () => (await this.client.request(nodesRequest, {})).nodes.filter((n) => n.alive).length === count, 10_000, `${count} live nodes`);

  /** Opens a wallet as the ledger would; with `tenantId`, the tenant's (as opened on its tenant subject). */
  openWallet = (walletId: string, policy: Policy = 'greedy', kind: 'user' | 'provider' = 'user', tenantId?: string): Promise<void> =>
    this.append(`wallet-${walletId}`, WalletOpened, `${walletId}-opened`, {
      walletId,
      currency: 'GRC',
      balanceAfter: '0',
      prevHash: '0'.repeat(64),
      kind,
      maxDebt: '0.5',
      minBalance: this.options.minBalance,
      policy,
      openedAtMs: Date.now(),
      ...(tenantId !== undefined ? { tenantId } : {}),
    });

  /** The credit-manager's verdict on a wallet, as the scheduler reads it from the standing stream. */
  setStanding = (walletId: string, to: Standing, policy: Policy = 'greedy'): Promise<void> =>
    this.append(`standing-${walletId}`, StandingChanged, `${walletId}-standing-${++this.standings}`, {
      walletId,
      from: null,
      to,
      balance: '1',
      currency: 'GRC',
      maxDebt: '0.5',
      minBalance: this.options.minBalance,
      policy,
      causeEventId: `${walletId}-opened`,
      causeRevision: 0,
      changedAtMs: Date.now(),
    });

  deploy = (functionId: string, extra: Record<string, unknown> = {}): Promise<unknown> =>
    this.client.requestRaw('mesh.api.scheduler.deploy-function', {
      functionId,
      image: 'mesh/task-base:latest',
      script: 'cat "$1"',
      cpuInitialMillis: 100,
      memoryBytes: 64 * 1024 * 1024,
      ...extra,
    });

  submit = (body: Record<string, unknown>): Promise<{ taskId: string }> =>
    this.client.requestRaw('mesh.api.scheduler.submit-task', { input: { inline: 'aGk=' }, ...body }) as Promise<{ taskId: string }>;

  task = (taskId: string) => this.client.request(taskRequest, { taskId });

  /** Waits until the task is in `state` (at `attempt`, when given) and returns it. */
  taskIn = (taskId: string, state: string, attempt?: number) =>
    eventually(
      async () => {
        const t = await this.task(taskId);
        return t.state === state && (attempt === undefined || t.attempt === attempt) && t;
      },
      15_000,
      `task ${taskId} ${state}${attempt ? ` at attempt ${attempt}` : ''}`,
    );
}

/** A harness opened before the describe's tests (and its own beforeAll hooks that follow) and closed after them. */
export function useSchedulerHarness(options: SchedulerHarnessOptions): SchedulerHarness {
  const harness = new SchedulerHarness(options);
  beforeAll(() => harness.open(), 60_000);
  afterAll(() => harness.close());
  return harness;
}
