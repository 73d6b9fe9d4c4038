import { connect, createServer, type Server, type Socket } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type Docker from 'dockerode';
import { ExecutionFailed } from '@mesh/contracts';
import { NatsServerProcess } from '@mesh/testing';
import { dataOf, dispatch, randomId, removeNodeContainers, requireDocker, startNode, terminalOf, waitForEnd, type NodeHandle } from './harness';

/**
 * The Docker engine going away and coming back, without touching the shared engine: the node
 * talks to Docker through a socket proxy that the test closes and reopens.
 */
class DockerSocketProxy {
  private server?: Server;
  private readonly sockets = new Set<Socket>();
  constructor(
    readonly path: string,
    private readonly target = '/var/run/docker.sock',
  ) {}

  async open(): Promise<void> {
    if (this.server) return; // already open: a second server would leak the first (and keep Jest alive)
    rmSync(this.path, { force: true });
    this.server = createServer({ allowHalfOpen: true }, (client) => {
      const upstream = connect({ path: this.target, allowHalfOpen: true });
      this.sockets.add(client).add(upstream);
      client.pipe(upstream).pipe(client);
      const drop = () => {
        client.destroy();
        upstream.destroy();
        this.sockets.delete(client);
        this.sockets.delete(upstream);
      };
      client.on('error', drop).on('close', drop);
      upstream.on('error', drop).on('close', drop);
    });
    await new Promise<void>((resolve) => this.server!.listen(this.path, resolve));
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    this.server = undefined;
    rmSync(this.path, { force: true });
  }
}

describe('container-manager: Docker engine down', () => {
  let server: NatsServerProcess;
  let docker: Docker;
  let node: NodeHandle;
  let proxy: DockerSocketProxy;
  const dir = mkdtempSync(join(tmpdir(), 'mesh-docker-proxy-'));
  const nodeId = randomId('cmdown');

  beforeAll(async () => {
    docker = await requireDocker();
    server = await NatsServerProcess.start();
    proxy = new DockerSocketProxy(join(dir, 'docker.sock'));
    node = await startNode(server, nodeId, { DOCKER_SOCKET: proxy.path, DOCKER_RETRIES: '2' });
  }, 60_000);

  afterAll(async () => {
    await proxy?.open().catch(() => undefined);
    await node?.running.stop().catch(() => undefined);
    await proxy?.close().catch(() => undefined);
    if (docker) await removeNodeContainers(docker, [nodeId]);
    await server?.dispose();
    rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  it('fails a dispatch with a clear, retryable docker-error after bounded retries, and recovers when Docker is back', async () => {
    const walletId = randomId('w');
    const functionId = randomId('f');
    const down = await dispatch(node.running.store, { nodeId, walletId, functionId, script: 'echo hi' });
    const failed = dataOf(await waitForEnd(node.running.store, down.executionId), ExecutionFailed);
    expect(failed).toMatchObject({ reason: 'docker-error', retryable: true });
    expect(failed.stderrTail).toMatch(/Docker engine is not answering/);
    expect(node.engine.status().dockerError).toMatch(/not answering/);

    await proxy.open();
    const back = await dispatch(node.running.store, { nodeId, walletId, functionId, script: 'echo hi' });
    expect(terminalOf(await waitForEnd(node.running.store, back.executionId))).toMatchObject({ type: 'ExecutionSucceeded' });
    expect(node.engine.status().dockerError).toBeUndefined();
  });
});
