import {
  ContainerResized,
  ContainerStarted,
  ContainerStopped,
  ResourceSampled,
  ScalingDecided,
  StandingChanged,
  eventOf,
  heartbeatSubject,
  isEvent,
  listScaledContainers,
  scaledContainerDetail,
  type NewEvent,
  type NodeHeartbeat,
  type RecordedEvent,
  type Standing,
} from '@mesh/contracts';
import { JetStreamEventStore, type ExpectedVersion } from '@mesh/eventstore';
import { MeshClient, RequestError, encodeJson, startService, type RunningService } from '@mesh/runtime';
import { NatsServerProcess, eventually } from '@mesh/testing';
import { ScalerService } from '../../../apps/scaler/src/main';
import { resizedData } from '../../../apps/scaler/test/scaling-fixtures';

const MiB = 1024 * 1024;

/**
 * The scaler on one real nats-server. The container-manager and the credit-manager are simulated
 * by appending their events to the raw JetStream store; the scaler's answers are read back from
 * scaling-<containerId>.
 */
describe('scaler service (real NATS)', () => {
  let server: NatsServerProcess;
  let service: RunningService;
  let raw: JetStreamEventStore;
  let client: MeshClient;
  const seqs = new Map<string, number>();
  /** Position of the last event the test appended, per category. */
  const lastPositions = new Map<string, bigint>();

  async function put(stream: string, events: NewEvent[], expected: ExpectedVersion) {
    const result = await raw.append(stream, events, expected);
    lastPositions.set(stream.slice(0, stream.indexOf('-')), result.position);
    return result;
  }

  const ref = (containerId: string, nodeId = 'n1', walletId = 'w1') => ({ containerId, nodeId, walletId, functionId: 'f1' });

  async function start(containerId: string, opts: { nodeId?: string; walletId?: string; cpuMillis?: number; memoryBytes?: number } = {}) {
    await put(
      `container-${containerId}`,
      [
        eventOf(ContainerStarted, `started-${containerId}`, {
          ...ref(containerId, opts.nodeId, opts.walletId),
          dockerId: `d${containerId}`,
          image: 'mesh/task-base:latest',
          cpuMillis: opts.cpuMillis ?? 1000,
          memoryBytes: opts.memoryBytes ?? 512 * MiB,
          cpuMaxMillis: 4000,
          cpuMinMillis: 250,
          coldStartMs: 200,
          startedAtMs: Date.now(),
        }),
      ],
      'no_stream',
    );
  }

  /** Appends the next sample of a container, its window ending `ageMs` ago. */
  async function sampleOf(
    containerId: string,
    usageCpuMillis: number,
    cpuLimitMillis: number,
    opts: { ageMs?: number; nodeId?: string; walletId?: string; memoryBytesMax?: number } = {},
  ) {
    const seq = (seqs.get(containerId) ?? 0) + 1;
    seqs.set(containerId, seq);
    const windowEndMs = Date.now() - (opts.ageMs ?? 0);
    return put(
      `usage-${containerId}`,
      [
        eventOf(ResourceSampled, `${containerId}-${seq}`, {
          sampleId: `${containerId}-${seq}`,
          ...ref(containerId, opts.nodeId, opts.walletId),
          seq,
          windowStartMs: windowEndMs - 1000,
          windowEndMs,
          cpuNanos: usageCpuMillis * 1_000_000,
          memoryBytesAvg: opts.memoryBytesMax ?? 100 * MiB,
          memoryBytesMax: opts.memoryBytesMax ?? 100 * MiB,
          cpuLimitMillis,
          memoryLimitBytes: 512 * MiB,
          final: false,
        }),
      ],
      seq - 2,
    );
  }

  async function stop(containerId: string) {
    await put(
      `container-${containerId}`,
      [eventOf(ContainerStopped, `stopped-${containerId}`, { ...ref(containerId), reason: 'idle', stoppedAtMs: Date.now() })],
      'any',
    );
  }

  /** What the container-manager does with a decision. */
  async function apply(decision: RecordedEvent) {
    if (!isEvent(decision, ScalingDecided)) throw new Error(`expected a ScalingDecided, got ${decision.type}`);
    const d = decision.data;
    await put(`container-${d.containerId}`, [eventOf(ContainerResized, `resized-${d.decisionId}`, resizedData(d, 3, Date.now()))], 'any');
  }

  async function standing(walletId: string, from: Standing | null, to: Standing, revision: number) {
    await put(
      `standing-${walletId}`,
      [
        eventOf(StandingChanged, `standing-${walletId}-${revision}`, {
          walletId,
          from,
          to,
          balance: to === 'overdrawn' ? '-0.1' : '5',
          currency: 'GRC',
          maxDebt: '0.5',
          minBalance: '0',
          policy: 'greedy',
          causeEventId: `cause-${revision}`,
          causeRevision: revision,
          changedAtMs: Date.now(),
        }),
      ],
      revision - 1,
    );
  }

  const decisions = (containerId: string) => raw.read(`scaling-${containerId}`);
  /** The RequestError a request was refused with (fails when it was answered). */
  async function refusal(request: Promise<unknown>): Promise<RequestError> {
    try {
      await request;
    } catch (err) {
      if (err instanceof RequestError) return err;
      throw err;
    }
    throw new Error('the request was answered, not refused');
  }
  const decisionNumber = (containerId: string, n: number) =>
    eventually(async () => (await decisions(containerId))[n - 1], 10_000, `decision ${n} of ${containerId}`);

  /** Waits until each scaler consumer has handled the last event the test appended to its category. */
  async function settled() {
    await eventually(
      async () => {
        const health = (await client.requestRaw('mesh.api.scaler.health', {})) as { positions: Record<string, string> };
        return [...lastPositions].every(([category, position]) => BigInt(health.positions[`scaler_${category}`] ?? '0') >= position);
      },
      10_000,
      'scaler consumers caught up',
    );
  }

  beforeAll(async () => {
    server = await NatsServerProcess.start();
    const nc = await server.connect('scaler-test');
    raw = await JetStreamEventStore.connect(nc);
    client = new MeshClient(nc);
    // History written before the scaler ever ran: a stopped container with saturated samples and
    // a running one whose saturated samples are minutes old. Replaying them must decide nothing.
    await start('cgone');
    await sampleOf('cgone', 1000, 1000, { ageMs: 120_000 });
    await sampleOf('cgone', 1000, 1000, { ageMs: 119_000 });
    await sampleOf('cgone', 1000, 1000, { ageMs: 118_000 });
    await stop('cgone');
    await start('cold');
    await sampleOf('cold', 1000, 1000, { ageMs: 60_000 });
    await sampleOf('cold', 1000, 1000, { ageMs: 59_000 });
    await sampleOf('cold', 1000, 1000, { ageMs: 58_000 });
    await put(
      'node-n1',
      [
        {
          id: 'reg-n1',
          type: 'NodeRegistered',
          data: { nodeId: 'n1', cpuMillis: 16_000, memoryBytes: 64 * 1024 * MiB, labels: {}, registeredAtMs: Date.now() },
        },
      ],
      'no_stream',
    );
    service = await startService(ScalerService, { NATS_URL: server.url, LOG_LEVEL: process.env.SCALER_TEST_LOG ?? 'error' });
  });

  afterAll(async () => {
    // Stop only once the handlers are idle (see docs/scaler.md, known limits: close during a handler).
    await settled().catch(() => undefined);
    await service?.stop();
    await raw?.connection.close();
    await server?.dispose();
  });

  it('replaying history decides nothing for stopped containers or old samples', async () => {
    // The last replayed sample of the running container is visible in the query: replay is done.
    await eventually(
      async () => {
        const { containers } = await client.request(listScaledContainers, {});
        return containers.find((c) => c.containerId === 'cold' && c.lastSampleSeq === 3);
      },
      10_000,
      'replay of cold',
    );
    await settled();
    expect(await decisions('cgone')).toEqual([]);
    expect(await decisions('cold')).toEqual([]);
    const { containers } = await client.request(listScaledContainers, {});
    expect(containers.map((c) => c.containerId)).not.toContain('cgone');
  });

  it('scales up from fresh saturated samples; the applied resize becomes the allocation', async () => {
    await start('cup');
    await sampleOf('cup', 1000, 1000);
    await sampleOf('cup', 1000, 1000);
    const first = await decisionNumber('cup', 1);
    expect(first).toMatchObject({ id: 'scale-cup-1', type: 'ScalingDecided', revision: 0 });
    expect(first.data).toMatchObject({ decisionId: 'scale-cup-1', fromCpuMillis: 1000, toCpuMillis: 2000, reason: 'scale-up', basedOnSampleSeqs: [1, 2] });
    // Not yet applied: more saturated samples decide nothing new.
    await sampleOf('cup', 1000, 1000);
    await settled();
    expect(await decisions('cup')).toHaveLength(1);
    await apply(first);
    await eventually(
      async () => {
        const detail = await client.request(scaledContainerDetail, { containerId: 'cup' });
        return detail.container.cpuMillis === 2000 && detail.container.pendingDecisionId === null ? detail : undefined;
      },
      10_000,
      'resize applied',
    );
    const detail = await client.request(scaledContainerDetail, { containerId: 'cup' });
    expect(detail.window.map((s) => s.seq)).toEqual([1, 2, 3]);
    expect(detail.recentDecisions).toEqual([expect.objectContaining({ decisionId: 'scale-cup-1', reason: 'scale-up' })]);
  });

  it('overdrawn wallet: throttles at once to the cap, keeps scaling under it, and unthrottles on recovery', async () => {
    await standing('wt', null, 'normal', 0);
    await start('cthr', { walletId: 'wt', cpuMillis: 2000 });
    await sampleOf('cthr', 1900, 2000, { walletId: 'wt' });
    await eventually(
      async () => (await client.request(listScaledContainers, { walletId: 'wt' })).containers.find((c) => c.lastSampleSeq === 1),
      10_000,
      'cthr tracked',
    );
    await standing('wt', 'normal', 'overdrawn', 1);
    const throttle = await decisionNumber('cthr', 1);
    expect(throttle.data).toMatchObject({ fromCpuMillis: 2000, toCpuMillis: 500, reason: 'throttle', throttleCapMillis: 500 });
    await apply(throttle);
    await eventually(
      async () => (await client.request(listScaledContainers, { walletId: 'wt' })).containers.find((c) => c.cpuMillis === 500 && c.throttleCapMillis === 500),
      10_000,
      'throttle applied',
    );
    // Saturated at the cap: nowhere to go, no decision.
    await sampleOf('cthr', 500, 500, { walletId: 'wt' });
    await sampleOf('cthr', 500, 500, { walletId: 'wt' });
    await settled();
    expect(await decisions('cthr')).toHaveLength(1);
    await standing('wt', 'overdrawn', 'normal', 2);
    const unthrottle = await decisionNumber('cthr', 2);
    expect(unthrottle.data).toMatchObject({ fromCpuMillis: 500, toCpuMillis: 2000, reason: 'unthrottle' });
    expect(unthrottle.data).not.toHaveProperty('throttleCapMillis');
  });

  it('never beyond the free capacity of the node (registered capacity and heartbeats)', async () => {
    await put(
      'node-n2',
      [{ id: 'reg-n2', type: 'NodeRegistered', data: { nodeId: 'n2', cpuMillis: 4000, memoryBytes: 8 * 1024 * MiB, labels: {}, registeredAtMs: Date.now() } }],
      'no_stream',
    );
    // The node reports 3200 m in use, our container has 1000 of them: 800 m are free.
    const beat: NodeHeartbeat = {
      nodeId: 'n2',
      atMs: Date.now(),
      cpuMillis: 4000,
      memoryBytes: 8 * 1024 * MiB,
      usedCpuMillis: 3200,
      usedMemoryBytes: 0,
      runningContainers: 2,
      idleContainers: [],
    };
    await start('cnode', { nodeId: 'n2' });
    await eventually(async () => (await client.request(listScaledContainers, { nodeId: 'n2' })).containers.length === 1, 10_000, 'cnode tracked');
    service.nc.publish(heartbeatSubject('n2'), encodeJson(beat)); // the service's own connection: delivered before the samples are handled
    await service.nc.flush();
    await sampleOf('cnode', 1000, 1000, { nodeId: 'n2' });
    await sampleOf('cnode', 1000, 1000, { nodeId: 'n2' });
    const decision = await decisionNumber('cnode', 1);
    expect(decision.data).toMatchObject({ fromCpuMillis: 1000, toCpuMillis: 1800, reason: 'scale-up' });
  });

  it('raises memory before the limit is hit', async () => {
    await start('cmem');
    await sampleOf('cmem', 500, 1000, { memoryBytesMax: 490 * MiB });
    const decision = await decisionNumber('cmem', 1);
    expect(decision.data).toMatchObject({ reason: 'memory-up', fromMemoryBytes: 512 * MiB, toMemoryBytes: 700 * MiB, fromCpuMillis: 1000, toCpuMillis: 1000 });
  });

  it('forgets a stopped container and refuses bad or unknown queries naming the field', async () => {
    await start('cstop');
    await sampleOf('cstop', 100, 1000);
    await eventually(async () => (await client.request(listScaledContainers, {})).containers.some((c) => c.containerId === 'cstop'), 10_000, 'cstop tracked');
    await stop('cstop');
    await eventually(
      async () => !(await client.request(listScaledContainers, {})).containers.some((c) => c.containerId === 'cstop'),
      10_000,
      'cstop forgotten',
    );
    // Samples after the stop decide nothing.
    await sampleOf('cstop', 1000, 1000);
    await sampleOf('cstop', 1000, 1000);
    await settled();
    expect(await decisions('cstop')).toEqual([]);
    const unknown = await refusal(client.request(scaledContainerDetail, { containerId: 'cstop' }));
    expect(unknown.code).toBe('unknown_container');
    const bad = await refusal(client.requestRaw(scaledContainerDetail.subject, { containerId: 'not valid!' }));
    expect(bad.code).toBe('invalid_input');
    expect(bad.issues).toEqual([{ field: 'containerId', rule: 'must match [A-Za-z0-9_-]{1,128}' }]);
  });

  it('rebuilds its view after a restart and continues the decision numbering', async () => {
    await settled();
    await service.stop();
    service = await startService(ScalerService, { NATS_URL: server.url, LOG_LEVEL: process.env.SCALER_TEST_LOG ?? 'error' });
    lastPositions.clear(); // the new instance reports positions only for what it handles from now on
    // cup is at 2000 (cup-1 applied); saturate it again.
    await sampleOf('cup', 2000, 2000);
    await sampleOf('cup', 2000, 2000);
    const second = await decisionNumber('cup', 2);
    expect(second).toMatchObject({ id: 'scale-cup-2', revision: 1 });
    expect(second.data).toMatchObject({ fromCpuMillis: 2000, toCpuMillis: 3000, reason: 'scale-up' });
  });
});
