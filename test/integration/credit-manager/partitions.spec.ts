import { RequestStrategy } from 'nats';
import { EVENTS_STREAM, isEvent, UsageCharged, type NewEventOf, type ResourceSampled } from '@mesh/contracts';
import { JetStreamEventStore } from '@mesh/eventstore';
import { readLeases, startService, type RunningService } from '@mesh/runtime';
import { NatsServerProcess, containerStartedEvent, eventually, resourceSampledEvent } from '@mesh/testing';
import { CreditManagerService } from '../../../apps/credit-manager/src/main';

const MiB = 1024 * 1024;
const PARTITIONS = 4;
const CONTAINERS = 16;

/**
 * Two credit-manager replicas on a partitioned log (docs/cluster.md "Partitions"): each runs the
 * `usage` consumers of its home partitions (p mod 2), so the samples of different containers are
 * charged by different replicas, every sample exactly once. When one replica stops, the other takes
 * its partitions (a released lease at once) and charges what follows, still exactly once.
 */
describe('credit-manager replicas share a partitioned log', () => {
  let server: NatsServerProcess;
  let raw: JetStreamEventStore;
  const replicas: (RunningService | undefined)[] = [];
  const env = (instance: string) => ({
    NATS_URL: server.url,
    LOG_LEVEL: process.env.CREDIT_TEST_LOG ?? 'error',
    CREDIT_MANAGER_INSTANCE: instance,
    SERVICE_REPLICAS: '2',
    LEADER_LEASE_MS: '1500',
  });

  beforeAll(async () => {
    server = await NatsServerProcess.start({ partitions: PARTITIONS });
    raw = await JetStreamEventStore.connect(await server.connect('partitions-test'));
    replicas.push(await startService(CreditManagerService, env('credit-manager')));
    replicas.push(await startService(CreditManagerService, env('credit-manager-1')));
  }, 60_000);

  afterAll(async () => {
    for (const r of replicas) await r?.stop();
    await raw?.connection.close();
    await server?.dispose();
  });

  const ids = Array.from({ length: CONTAINERS }, (_, i) => `pc${i}`);
  const sampleOf = (containerId: string, seq: number): NewEventOf<typeof ResourceSampled> => {
    const windowStartMs = 1_700_000_000_000 + seq * 1000;
    return resourceSampledEvent(
      { containerId, nodeId: 'n1', walletId: 'w1', functionId: 'f1' },
      { seq, windowEndMs: windowStartMs + 1000, cpuNanos: 1_000_000_000 + seq, memoryBytes: 64 * MiB, cpuLimitMillis: 1000, memoryLimitBytes: 512 * MiB },
    );
  };
  const sample = (containerId: string, seq: number) => raw.append(`usage-${containerId}`, [sampleOf(containerId, seq)], seq === 1 ? 'no_stream' : seq - 2);
  const charged = async (containerId: string) => (await raw.read(`meter-${containerId}`)).filter((e) => isEvent(e, UsageCharged)).map((e) => e.data.sampleSeq);
  const allCharged = (samples: number) =>
    eventually(
      async () => {
        const seqs = await Promise.all(ids.map(charged));
        return seqs.every((s) => s.length >= samples) ? seqs : undefined;
      },
      60_000,
      `${samples} charges of each container`,
    );
  /** What each replica's health says: the partitions it runs now, and the partition consumers that handled events. */
  const health = async () => {
    const out = new Map<string, { partitions: number[]; ran: string[] }>();
    const answers = await raw.connection.requestMany('mesh.api.credit-manager.health', '', { strategy: RequestStrategy.Count, maxMessages: 2, maxWait: 5000 });
    for await (const m of answers) {
      const { data } = m.json<{ data: { positions: Record<string, string>; details: { instance: string; partitions: number[] } } }>();
      const ran = Object.keys(data.positions).filter((k) => k.startsWith('credit-manager_usage_p'));
      out.set(data.details.instance, { partitions: data.details.partitions, ran: ran.sort() });
    }
    return out;
  };
  const holders = async () => {
    const leases = await readLeases(raw.connection);
    return Array.from({ length: PARTITIONS }, (_, p) => leases.get(`credit-manager.p${p}`));
  };

  it('given two replicas, then each holds its home partitions and charges the samples stored in them, each exactly once', async () => {
    await eventually(
      async () => ((await holders()).every((h, p) => h?.instance === (p % 2 === 0 ? 'credit-manager' : 'credit-manager-1')) ? true : undefined),
      30_000,
      'every partition at home',
    );
    // Running at home, not only held: a replica that takes its partition back acts a lease later.
    await eventually(
      async () => {
        const now = await health();
        return now.get('credit-manager')?.partitions.join() === '0,2' && now.get('credit-manager-1')?.partitions.join() === '1,3' ? true : undefined;
      },
      30_000,
      'each replica running its home partitions',
    );
    for (const id of ids) {
      await raw.append(
        `container-${id}`,
        [containerStartedEvent({ containerId: id, nodeId: 'n1', walletId: 'w1', functionId: 'f1' }, { cpuMillis: 1000, memoryBytes: 512 * MiB })],
        'no_stream',
      );
      for (const seq of [1, 2, 3]) await sample(id, seq);
    }
    const seqs = await allCharged(3);
    for (const s of seqs) expect(s).toEqual([1, 2, 3]);

    // The samples landed in partitions of both replicas, and each partition's consumer (run by its
    // lease holder alone) worked through all of its samples.
    const jsm = await raw.connection.jetstreamManager();
    const stored = (await jsm.streams.info(EVENTS_STREAM, { subjects_filter: 'mesh.events.usage.*.*' })).state.subjects ?? {};
    const used = new Set(Object.keys(stored).map((subject) => Number(subject.split('.')[4])));
    expect([...used].some((p) => p % 2 === 0) && [...used].some((p) => p % 2 === 1)).toBe(true);
    for (const p of used) {
      const info = await jsm.consumers.info(EVENTS_STREAM, `credit-manager_usage_p${p}`);
      expect({ p, pending: info.num_pending, ackPending: info.num_ack_pending }).toEqual({ p, pending: 0, ackPending: 0 });
    }
    // Each replica handled the partitions it holds and no other (its health lists the consumers it ran).
    const ran = new Map([...(await health())].map(([instance, h]) => [instance, h.ran]));
    const expected = (home: number) =>
      [...used]
        .filter((p) => p % 2 === home)
        .map((p) => `credit-manager_usage_p${p}`)
        .sort();
    expect(Object.fromEntries(ran)).toEqual({ 'credit-manager': expected(0), 'credit-manager-1': expected(1) });
  }, 120_000);

  it('when one replica stops, then the other takes its partitions at once and charges the later samples, still exactly once', async () => {
    await replicas[1]!.stop(); // releases its leases
    replicas[1] = undefined;
    await eventually(async () => ((await holders()).every((h) => h?.instance === 'credit-manager' && !h.released) ? true : undefined), 30_000, 'one holder');
    for (const id of ids) await sample(id, 4);
    const seqs = await allCharged(4);
    for (const s of seqs) expect(s).toEqual([1, 2, 3, 4]);
  }, 120_000);
});
