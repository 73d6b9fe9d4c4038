import { execSync } from 'node:child_process';
import { hostname } from 'node:os';
import { LEASED_SERVICES, nodesRequest, SERVICES, type RecordedEvent, type ServiceName } from '@mesh/contracts';
import { JetStreamEventStore, readAllPaged } from '@mesh/eventstore';
import { natsAuthOptionsFromFile } from '@mesh/identity';
import { MeshClient } from '@mesh/runtime';
import { RequestStrategy, type NatsConnection } from 'nats';
import { eventually, NatsClusterProcess, NatsServerProcess, ServiceProcess } from '@mesh/testing';
import { demoEnv, nodeCores } from '../../cli/commands/demo';
import type { DemoOptions } from '../../cli/demo/scenarios';

/**
 * The whole stack for end-to-end tests: a real nats-server, the real Docker engine, five service
 * processes. With `auth` the server runs the authorization block libs/identity generates,
 * each service connects with its own credentials and the test client is the operator: every scenario
 * then also proves the permission table (libs/contracts/src/permissions.ts) lets the stack work.
 */
export class E2EStack {
  readonly services = new Map<ServiceName, ServiceProcess>();
  server!: NatsServerProcess;
  /** With the `natsCluster` option: the servers, instead of `server` (test/cluster). */
  cluster?: NatsClusterProcess;
  store!: JetStreamEventStore;
  client!: MeshClient;
  readonly nodeId = `e2e-${hostname().replace(/[^A-Za-z0-9_-]/g, '')}-${process.pid}`.slice(0, 60);
  /** Further worker nodes (test/cluster/nodes.spec.ts): container-managers started by `startNode`, by node id. */
  readonly extraNodes = new Map<string, { process: ServiceProcess; env: Record<string, string> }>();
  /** Extra environment of every container-manager (e.g. NODE_CPU_MILLIS); set before `start`. */
  nodeEnv: Record<string, string> = {};

  constructor(
    readonly speed: number,
    /** The scenarios (and test/security) pass true; false keeps a server without authorization (test/chaos restarts services with the common env). */
    readonly auth = false,
    /** Run NATS as a cluster of this many servers; services get every URL and EVENT_REPLICAS = the size. */
    readonly natsCluster?: number,
    /** Processes per replicated service (LEASED_SERVICES; the container-manager stays one): `<service>-<i>` instances. */
    readonly replicas = 1,
    /** Partitions of the log (needs `auth`: the mapping is in the generated config; docs/cluster.md "Partitions"). */
    readonly partitions = 1,
  ) {}

  /** Every replica of each service (`services` holds the first one). */
  readonly replicaSets = new Map<ServiceName, ServiceProcess[]>();

  /** The environment of replica `index` of `service`: its own instance name when there are several. */
  replicaEnv(service: ServiceName, index: number): Record<string, string> {
    const instanceVar = `${service.toUpperCase().replace(/-/g, '_')}_INSTANCE`;
    return { ...this.envOf(service), ...(this.replicas > 1 ? { [instanceVar]: `${service}-${index}` } : {}) };
  }

  /** Whichever NATS runs: the single server or the cluster (all URLs comma-separated in `url`). */
  private get nats(): Pick<NatsServerProcess, 'url' | 'credsPath' | 'connect' | 'dispose'> {
    return this.cluster ?? this.server;
  }

  /** One URL to probe health with (nats.js takes a list, not a comma-separated string). */
  private get probeUrl(): string {
    return this.nats.url.split(',')[0];
  }

  get env(): Record<string, string> {
    const replicas: Record<string, string> = this.natsCluster ? { EVENT_REPLICAS: String(this.natsCluster) } : {};
    return {
      NATS_URL: this.nats.url,
      ...replicas,
      SERVICE_REPLICAS: String(this.replicas),
      NODE_ID: this.nodeId,
      LEDGER_HTTP_PORT: '0',
      LOG_LEVEL: process.env.E2E_LOG_LEVEL ?? 'warn',
      ...demoEnv(this.speed),
    };
  }

  /** One service's environment: the common one plus its own credentials on an auth-enabled server. */
  envOf(service: ServiceName): Record<string, string> {
    return {
      ...this.env,
      ...(service === 'container-manager' ? this.nodeEnv : {}),
      ...(this.auth ? { NATS_CREDS_FILE: this.nats.credsPath({ kind: 'service', name: service }) } : {}),
    };
  }

  /**
   * Starts (or starts again, same configuration) one more worker node: a container-manager with its
   * own NODE_ID and `env` (its DOCKER_SOCKET, NODE_NETWORK ...). The caller owns that node's engine.
   */
  async startNode(nodeId: string, env: Record<string, string> = this.extraNodes.get(nodeId)?.env ?? {}): Promise<ServiceProcess> {
    const p = ServiceProcess.start('container-manager', { ...this.envOf('container-manager'), ...env, NODE_ID: nodeId, CONTAINER_MANAGER_INSTANCE: nodeId });
    this.extraNodes.set(nodeId, { process: p, env });
    // Health answers from any container-manager (one queue group): wait until the scheduler sees this node ready instead.
    await eventually(
      async () => {
        if (p.child.exitCode !== null) throw new Error(`${nodeId} exited with ${p.child.exitCode}: ${p.logs}`);
        const { nodes } = await this.client.request(nodesRequest, {}, 5000);
        return nodes.some((n) => n.nodeId === nodeId && n.state === 'ready') || undefined;
      },
      120_000,
      `${nodeId} ready`,
    );
    return p;
  }

  /** How a test connection authenticates as the operator (nothing on a server without auth). */
  get operatorAuth() {
    return this.auth ? natsAuthOptionsFromFile(this.nats.credsPath({ kind: 'operator' })) : {};
  }

  get options(): DemoOptions {
    return {
      speed: this.speed,
      nodeCores: nodeCores(),
      image: 'mesh/task-base:latest',
      idleTimeoutMs: Number(demoEnv(this.speed).IDLE_TIMEOUT_MS),
      log: (l) => process.stdout.write(`[e2e] ${l}\n`),
    };
  }

  async start(): Promise<void> {
    if (this.natsCluster) this.cluster = await NatsClusterProcess.start({ size: this.natsCluster, auth: this.auth, partitions: this.partitions });
    else this.server = await NatsServerProcess.start({ auth: this.auth, partitions: this.partitions });
    for (const s of SERVICES) {
      const first = ServiceProcess.start(s, this.replicaEnv(s, 0));
      this.services.set(s, first);
      this.replicaSets.set(s, [first]);
    }
    for (const p of this.services.values()) await p.healthy(this.probeUrl, 120_000, this.operatorAuth);
    // The other replicas once the first ones are up: nine processes compiling at once starve a small machine.
    for (const s of LEASED_SERVICES) {
      for (let i = 1; i < this.replicas; i++) this.replicaSets.get(s)!.push(ServiceProcess.start(s, this.replicaEnv(s, i)));
    }
    const nc = await this.nats.connect('e2e');
    // Every replica answers health (no queue group): wait for each one's own answer, by pid.
    if (this.replicas > 1) for (const p of [...this.replicaSets.values()].flat()) await this.replicaHealthy(nc, p);
    this.store = await JetStreamEventStore.connect(nc, { replicas: this.natsCluster });
    this.client = new MeshClient(nc, 20_000);
  }

  /** Waits until replica `p` itself answers health (the health subject reaches every replica). */
  async replicaHealthy(nc: NatsConnection, p: ServiceProcess, timeoutMs = 120_000): Promise<Record<string, unknown>> {
    const exited = p.exited.then((code) => Promise.reject(new Error(`${p.service} (pid ${p.child.pid}) exited with ${code}: ${p.logs}`)));
    exited.catch(() => undefined); // observed by the race below only while waiting
    return Promise.race([exited, this.answeredHealth(nc, p, timeoutMs)]);
  }

  private answeredHealth(nc: NatsConnection, p: ServiceProcess, timeoutMs: number): Promise<Record<string, unknown>> {
    return eventually(
      async () => {
        const answers = await nc.requestMany(`mesh.api.${p.service}.health`, new Uint8Array(), { maxWait: 1000, strategy: RequestStrategy.Timer });
        for await (const m of answers) {
          const body = JSON.parse(m.string()) as { ok: boolean; data: { pid?: number } & Record<string, unknown> };
          if (body.ok && body.data.pid === p.child.pid) return body.data;
        }
        return undefined;
      },
      timeoutMs,
      `${p.service} replica (pid ${p.child.pid}) health`,
    );
  }

  /** SIGKILL one service and start it again (same configuration). */
  async kill(service: ServiceName): Promise<void> {
    await this.services.get(service)!.stop('SIGKILL');
    const p = ServiceProcess.start(service, this.envOf(service));
    this.services.set(service, p);
    await p.healthy(this.probeUrl, 120_000, this.operatorAuth);
  }

  async events(filter?: (e: RecordedEvent) => boolean): Promise<RecordedEvent[]> {
    const out: RecordedEvent[] = [];
    for await (const e of readAllPaged(this.store)) if (!filter || filter(e)) out.push(e);
    return out;
  }

  async stop(): Promise<void> {
    for (const n of this.extraNodes.values()) await n.process.stop('SIGTERM');
    for (const p of new Set([...this.services.values(), ...[...this.replicaSets.values()].flat()])) await p.stop('SIGTERM');
    // Whatever a killed container-manager left behind: only this test node's containers.
    execSync(`docker ps -aq --filter label=mesh.node=${this.nodeId} | xargs -r docker rm -f`, { stdio: 'ignore' });
    await this.store?.connection.close().catch(() => undefined);
    await (this.cluster ?? this.server)?.dispose();
  }

  logs(): string {
    return [...this.services.values()].map((p) => `----- ${p.service}\n${p.logs.slice(-4000)}`).join('\n');
  }
}
