import Docker from 'dockerode';
import { randomBytes } from 'node:crypto';
import type { NatsConnection } from 'nats';
import { messageOf } from '@mesh/common';
import {
  eventOf,
  isEvent,
  ResourceSampled,
  streamName,
  TaskDispatched,
  type EventData,
  type EventDefinition,
  type RecordedEvent,
  type RecordedOf,
} from '@mesh/contracts';
import { createEventStore } from '@mesh/eventstore/factory';
import { startService, ValidatingEventStore, type RunningService } from '@mesh/runtime';
import { eventually, NatsServerProcess } from '@mesh/testing';
import type { EventStore } from '@mesh/eventstore/port';
import { ContainerManagerService } from '../../../apps/container-manager/src/main';
import { ContainerManagerEngine } from '../../../apps/container-manager/src/container-manager.engine';
import { LABEL } from '../../../apps/container-manager/src/docker/sandbox';

export const BASE_IMAGE = process.env.MESH_BASE_IMAGE ?? 'mesh/task-base:latest';
export const TERMINAL = ['ExecutionSucceeded', 'ExecutionFailed', 'ExecutionTimedOut', 'ExecutionAborted'];

export const randomId = (prefix: string) => `${prefix}${randomBytes(5).toString('hex')}`;

/** Fails with a clear message when no Docker engine answers or the base image is missing. */
export async function requireDocker(): Promise<Docker> {
  const docker = new Docker({ socketPath: process.env.DOCKER_SOCKET ?? '/var/run/docker.sock' });
  try {
    await docker.ping();
  } catch (err) {
    throw new Error(`Docker engine is not answering (${messageOf(err)}). Run: bash infra/local/provision.sh docker`, { cause: err });
  }
  try {
    await docker.getImage(BASE_IMAGE).inspect();
  } catch (err) {
    throw new Error(`base image ${BASE_IMAGE} is missing. Run: bash infra/local/provision.sh docker`, { cause: err });
  }
  return docker;
}

/** Removes every container of the given test nodes (only containers carrying their mesh.node label). */
export async function removeNodeContainers(docker: Docker, nodeIds: string[]): Promise<void> {
  for (const nodeId of nodeIds) {
    const list = await docker.listContainers({ all: true, filters: { label: [`${LABEL.node}=${nodeId}`] } }).catch(() => []);
    for (const c of list)
      if (c.Labels[LABEL.node] === nodeId)
        await docker
          .getContainer(c.Id)
          .remove({ force: true })
          .catch(() => undefined);
  }
}

export async function nodeContainers(docker: Docker, nodeId: string): Promise<Docker.ContainerInfo[]> {
  const list = await docker.listContainers({ all: true, filters: { label: [`${LABEL.node}=${nodeId}`] } });
  return list.filter((c) => c.Labels[LABEL.node] === nodeId);
}

export interface NodeHandle {
  nodeId: string;
  running: RunningService;
  engine: ContainerManagerEngine;
}

export async function startNode(server: NatsServerProcess, nodeId: string, env: Record<string, string> = {}): Promise<NodeHandle> {
  const running = await startService(ContainerManagerService, {
    NATS_URL: server.url,
    NODE_ID: nodeId,
    LOG_LEVEL: process.env.CM_TEST_LOG_LEVEL ?? 'warn',
    SAMPLE_INTERVAL_MS: '250',
    IDLE_TIMEOUT_MS: '60000',
    NODE_CPU_MILLIS: '2000',
    NODE_MEMORY_BYTES: String(4 * 1024 ** 3),
    ...env,
  });
  // The service's own store may only write the container-manager's categories; the tests also play
  // the scheduler, scaler and credit-manager (TaskDispatched, ScalingDecided, StandingChanged), so
  // they write through a store for any category (still checked against the catalog).
  const store = new ValidatingEventStore(await createEventStore({ EVENT_STORE: 'jetstream', EVENT_REPLICAS: 1 } as never, running.nc), '*');
  return { nodeId, running: { app: running.app, nc: running.nc, store, stop: () => running.stop() }, engine: running.app.get(ContainerManagerEngine) };
}

/** What `useNodes` opens: the Docker engine, a nats-server and the started container-managers, in the order asked for. */
export class NodesFixture {
  readonly nodes: NodeHandle[] = [];
  /** Unset until the describe's beforeAll has run (or when it failed). */
  opened?: { docker: Docker; server: NatsServerProcess };

  get docker(): Docker {
    return this.ready().docker;
  }

  get server(): NatsServerProcess {
    return this.ready().server;
  }

  /** The first node (the only one, in most specs). */
  get node(): NodeHandle {
    const first = this.nodes.at(0);
    if (!first) throw new Error('no container-manager started: use the fixture inside a test or a later hook');
    return first;
  }

  private ready(): { docker: Docker; server: NatsServerProcess } {
    if (!this.opened) throw new Error('the nodes fixture is not open: use it inside a test or a later hook');
    return this.opened;
  }
}

/**
 * Before a describe's tests: checks Docker, starts a nats-server and one container-manager per
 * entry (in order). After them: stops the nodes, removes their containers, disposes of the server.
 */
export function useNodes(specs: { nodeId: string; env?: Record<string, string> }[]): NodesFixture {
  const fixture = new NodesFixture();
  let docker: Docker | undefined;
  let server: NatsServerProcess | undefined;
  beforeAll(async () => {
    docker = await requireDocker();
    server = await NatsServerProcess.start();
    for (const { nodeId, env } of specs) fixture.nodes.push(await startNode(server, nodeId, env));
    fixture.opened = { docker, server };
  }, 60_000);
  afterAll(async () => {
    for (const n of fixture.nodes) await n.running.stop().catch(() => undefined);
    if (docker)
      await removeNodeContainers(
        docker,
        specs.map((s) => s.nodeId),
      );
    await server?.dispose();
  }, 60_000);
  return fixture;
}

export type DispatchData = EventData<typeof TaskDispatched>;

export interface DispatchOptions {
  nodeId: string;
  walletId: string;
  functionId: string;
  script: string;
  input?: string;
  objectRef?: { bucket: string; key: string };
  image?: string;
  timeoutMs?: number;
  memoryBytes?: number;
  cpuInitialMillis?: number;
  taskId?: string;
  attempt?: number;
  /** The task's owner (absent: the operator's). */
  tenantId?: string;
  network?: boolean;
}

/** Appends a TaskDispatched as the scheduler would. */
export async function dispatch(store: EventStore, o: DispatchOptions): Promise<DispatchData> {
  const taskId = o.taskId ?? randomId('t');
  const data: DispatchData = {
    taskId,
    functionId: o.functionId,
    walletId: o.walletId,
    attempt: o.attempt ?? 1,
    executionId: `${taskId}-${o.attempt ?? 1}`,
    nodeId: o.nodeId,
    function: {
      functionId: o.functionId,
      version: 1,
      image: o.image ?? BASE_IMAGE,
      script: o.script,
      cpuMinMillis: 100,
      cpuMaxMillis: 2000,
      cpuInitialMillis: o.cpuInitialMillis ?? 1000,
      memoryBytes: o.memoryBytes ?? 128 * 1024 * 1024,
      timeoutMs: o.timeoutMs ?? 30_000,
      network: o.network ?? false,
      maxAttempts: 3,
    },
    ...(o.tenantId ? { tenantId: o.tenantId } : {}),
    input: o.objectRef ? { objectRef: o.objectRef } : { inline: Buffer.from(o.input ?? '').toString('base64') },
    dispatchedAtMs: Date.now(),
  };
  await store.append(streamName('task', taskId), [eventOf(TaskDispatched, `dispatch-${data.executionId}`, data)], 'any');
  return data;
}

export async function executionEvents(store: EventStore, executionId: string): Promise<RecordedEvent[]> {
  return store.read(streamName('execution', executionId));
}

/** Waits for the terminal event of an execution and returns the whole stream. */
export async function waitForEnd(store: EventStore, executionId: string, timeoutMs = 30_000): Promise<RecordedEvent[]> {
  return eventually(
    async () => {
      const events = await executionEvents(store, executionId);
      return events.some((e) => TERMINAL.includes(e.type)) ? events : undefined;
    },
    timeoutMs,
    `the end of execution ${executionId}`,
  );
}

export function terminalOf(events: RecordedEvent[]): RecordedEvent {
  const t = events.find((e) => TERMINAL.includes(e.type));
  if (!t) throw new Error('no terminal event');
  return t;
}

/** Waits for the first event of `definition` in `stream`. */
export async function waitForEvent<D extends EventDefinition>(store: EventStore, stream: string, definition: D, timeoutMs = 30_000): Promise<RecordedOf<D>> {
  return eventually(async () => firstOf(await store.read(stream), definition), timeoutMs, `${definition.type} in ${stream}`);
}

/** The first event of `definition` among `events`, typed (undefined when there is none). */
export function firstOf<D extends EventDefinition>(events: RecordedEvent[], definition: D): RecordedOf<D> | undefined {
  return events.find((e): e is RecordedOf<D> => isEvent(e, definition));
}

/** The data of the first event of `definition` among `events`; fails when there is none. */
export function dataOf<D extends EventDefinition>(events: RecordedEvent[], definition: D): EventData<D> {
  const found = firstOf(events, definition);
  if (!found) throw new Error(`no ${definition.type} among ${events.map((e) => e.type).join(', ')}`);
  return found.data;
}

/** The samples of a container, in order. */
export async function samplesOf(store: EventStore, containerId: string): Promise<EventData<typeof ResourceSampled>[]> {
  return (await store.read(streamName('usage', containerId))).filter((e) => isEvent(e, ResourceSampled)).map((e) => e.data);
}

export type { NatsConnection };
