import { execFileSync } from 'node:child_process';
import { createServer, connect, type Server } from 'node:net';
import { networkInterfaces } from 'node:os';
import { ExecutionStarted, ExecutionSucceeded, streamName } from '@mesh/contracts';
import { eventually } from '@mesh/testing';
import { readExecutionOutput } from '../../../apps/container-manager/src/storage/object-io';
import { bridgeNameOf, isolationRules, tenantNetworkName } from '../../../apps/container-manager/src/docker/tenant-network';
import { dataOf, dispatch, randomId, useNodes, waitForEnd, waitForEvent } from './harness';

const METADATA_IP = '169.254.169.254';
const LISTENER_PORT = 8080;
/** A network-enabled task that serves "pong" on 8080 until it is stopped. */
const PONG_SERVER = `nc -ll -p ${LISTENER_PORT} -e echo pong`;
/** Tries a TCP connection to each "ip port" of its input; prints "<ip>:<port> reachable|unreachable", and what a pong server answered. */
const PROBE = String.raw`
while read -r ip port; do
  [ -z "$ip" ] && continue
  if timeout 5 bash -c "exec 3<>/dev/tcp/$ip/$port" 2>/dev/null; then
    echo "$ip:$port reachable"
    echo "$ip:$port answered $(timeout 5 nc "$ip" "$port" </dev/null 2>/dev/null)"
  else
    echo "$ip:$port unreachable"
  fi
done < "$1"
true
`;

/** The host's main IPv4 address (not loopback, not a Docker bridge). */
function hostMainIp(): string {
  for (const [name, addresses] of Object.entries(networkInterfaces())) {
    if (name === 'lo' || name.startsWith('docker') || name.startsWith('br-') || name.startsWith('mt-') || name.startsWith('veth')) continue;
    const v4 = addresses?.find((a) => a.family === 'IPv4' && !a.internal);
    if (v4) return v4.address;
  }
  throw new Error('the host has no IPv4 address besides loopback and Docker bridges');
}

function ruleInstalled(chain: string, spec: string[]): boolean {
  try {
    execFileSync('iptables', ['-w', '-C', chain, ...spec], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Answers "pong"? (from the host: connections the host opens to a container are allowed). */
function pongs(ip: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: ip, port: LISTENER_PORT }, () => undefined);
    let got = '';
    socket.on('data', (d) => (got += d.toString()));
    socket.on('close', () => resolve(got.includes('pong')));
    socket.on('error', () => resolve(false));
  });
}

/**
 * Network-enabled functions for real: each owner's tasks get the bridge `mesh-net-<owner>` with
 * iptables rules installed by the container-manager. A task of tenant A reaches a server of its own
 * tenant (the probe works), and nothing of the host (gateway, main IP, a link-local metadata
 * address bound on lo) nor tenant B's server: the host's listener never sees a connection.
 */
describe('container-manager: network-enabled tasks are cut off the host, metadata and other tenants', () => {
  const nodeId = randomId('cmnet');
  const tenantA = randomId('ta');
  const tenantB = randomId('tb');
  const cm = useNodes([{ nodeId }]);
  let host: Server;
  let hostPort = 0;
  const hostConnections: string[] = [];
  let metadataAdded = false;

  beforeAll(async () => {
    host = createServer((socket) => {
      hostConnections.push(`${socket.remoteAddress ?? '?'} -> ${socket.localAddress ?? '?'}`);
      socket.end('host secret\n');
    });
    await new Promise<void>((resolve) => host.listen(0, '0.0.0.0', resolve));
    hostPort = (host.address() as { port: number }).port;
    execFileSync('ip', ['addr', 'add', `${METADATA_IP}/32`, 'dev', 'lo']);
    metadataAdded = true;
  });

  afterAll(async () => {
    if (metadataAdded) execFileSync('ip', ['addr', 'del', `${METADATA_IP}/32`, 'dev', 'lo']);
    await new Promise<void>((resolve) => (host ? host.close(() => resolve()) : resolve()));
    // The networks go once their containers are gone (useNodes' afterAll removes those after this hook: remove them here first).
    for (const c of await cm.docker.listContainers({ all: true, filters: { label: [`mesh.node=${nodeId}`] } }))
      await cm.docker.getContainer(c.Id).remove({ force: true });
    for (const owner of [tenantA, tenantB]) await cm.node.engine.networks.remove(owner);
    for (const owner of [tenantA, tenantB]) for (const rule of isolationRules(bridgeNameOf(owner))) expect(ruleInstalled(rule.chain, rule.spec)).toBe(false);
  }, 60_000);

  /** Starts a pong server task of `tenantId`; resolves to its container's address on the tenant network once it answers. */
  async function pongServer(tenantId: string): Promise<string> {
    const d = await dispatch(cm.node.running.store, {
      nodeId,
      walletId: randomId('w'),
      functionId: randomId('f'),
      tenantId,
      network: true,
      script: PONG_SERVER,
      timeoutMs: 120_000,
    });
    const started = (await waitForEvent(cm.node.running.store, streamName('execution', d.executionId), ExecutionStarted)).data;
    const [container] = await cm.docker.listContainers({ filters: { label: [`mesh.container=${started.containerId}`] } });
    const ip = (await cm.docker.getContainer(container.Id).inspect()).NetworkSettings.Networks[tenantNetworkName(tenantId)]?.IPAddress;
    if (!ip) throw new Error(`the container of ${tenantId} is not on ${tenantNetworkName(tenantId)}`);
    await eventually(() => pongs(ip), 30_000, `the pong server of ${tenantId} at ${ip}`);
    return ip;
  }

  it('reaches its own tenant, not the host (gateway, main IP), not 169.254.169.254, not another tenant', async () => {
    const ownServer = await pongServer(tenantA);
    const otherServer = await pongServer(tenantB);
    const network = await cm.docker.getNetwork(tenantNetworkName(tenantA)).inspect();
    const gateway = network.IPAM?.Config?.[0]?.Gateway;
    if (!gateway) throw new Error(`${tenantNetworkName(tenantA)} has no gateway`);
    expect(network.Options?.['com.docker.network.bridge.name']).toBe(bridgeNameOf(tenantA));
    const mainIp = hostMainIp();
    for (const rule of isolationRules(bridgeNameOf(tenantA))) expect(ruleInstalled(rule.chain, rule.spec)).toBe(true);

    const targets = [
      `${ownServer} ${LISTENER_PORT}`,
      `${gateway} ${hostPort}`,
      `${mainIp} ${hostPort}`,
      `${METADATA_IP} ${hostPort}`,
      `${otherServer} ${LISTENER_PORT}`,
    ];
    const probe = await dispatch(cm.node.running.store, {
      nodeId,
      walletId: randomId('w'),
      functionId: randomId('f'),
      tenantId: tenantA,
      network: true,
      script: PROBE,
      input: `${targets.join('\n')}\n`,
    });
    const ended = dataOf(await waitForEnd(cm.node.running.store, probe.executionId, 60_000), ExecutionSucceeded);
    const report = (await readExecutionOutput(cm.node.running.nc, ended.outputRef)).stdout.toString();

    // The probe works: the tenant's own server answers.
    expect(report).toContain(`${ownServer}:${LISTENER_PORT} reachable`);
    expect(report).toContain(`${ownServer}:${LISTENER_PORT} answered pong`);
    // Nothing else does.
    for (const target of [`${gateway}:${hostPort}`, `${mainIp}:${hostPort}`, `${METADATA_IP}:${hostPort}`, `${otherServer}:${LISTENER_PORT}`]) {
      expect(report).toContain(`${target} unreachable`);
    }
    expect(report).not.toContain('host secret');
    expect(hostConnections).toEqual([]);
  }, 120_000);

  it('keeps NetworkMode none for a function without network', async () => {
    const d = await dispatch(cm.node.running.store, {
      nodeId,
      walletId: randomId('w'),
      functionId: randomId('f'),
      tenantId: tenantA,
      script: 'sleep 30',
      timeoutMs: 60_000,
    });
    const started = (await waitForEvent(cm.node.running.store, streamName('execution', d.executionId), ExecutionStarted)).data;
    const [container] = await cm.docker.listContainers({ filters: { label: [`mesh.container=${started.containerId}`] } });
    expect((await cm.docker.getContainer(container.Id).inspect()).HostConfig.NetworkMode).toBe('none');
  });
});
