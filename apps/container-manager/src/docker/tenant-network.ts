import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import type Docker from 'dockerode';
import { KeyedMutex, messageOf } from '@mesh/common';

/**
 * Network for functions deployed with `network: true`: one Docker bridge network per owner
 * (`mesh-net-<owner>`, owner = tenant id or `operator`), created on demand, with firewall rules
 * installed BEFORE the network exists (they match its bridge interface by name):
 *   INPUT        -i <bridge> -m conntrack --ctstate          no connection to the host itself: no
 *                NEW,INVALID -j REJECT                       host address answers (the bridge's
 *                                                            gateway, the host's own IPs, anything
 *                                                            bound on lo, 169.254.169.254 included)
 *   DOCKER-USER  -i <bridge> -m conntrack --ctstate DNAT     no host port published by Docker (a
 *                -j REJECT                                   DNAT would carry it past INPUT)
 *   DOCKER-USER  -i <bridge> -d 169.254.0.0/16 -j REJECT     no link-local address (cloud metadata
 *                                                            at 169.254.169.254 and the like)
 * Other owners' containers are on other bridges, which Docker's own isolation chains
 * (DOCKER-ISOLATION-STAGE-1/2) already keep apart. What is left is the way out through the host's
 * NAT: the internet and the hosts the node's own network routes to.
 * Docker 20.10 offers no option for this (`--internal` cuts the way out as well; `enable_icc`
 * only concerns containers of the same bridge), hence iptables. REJECT rather than DROP: a task
 * gets "connection refused" at once instead of hanging until its timeout.
 */
export const NETWORK_OWNER_LABEL = 'mesh.network-owner';

export const tenantNetworkName = (owner: string) => `mesh-net-${owner}`;

/** The bridge interface of an owner's network: `mt-` + 12 hex of the owner's hash (interface names are at most 15 characters). */
export const bridgeNameOf = (owner: string) => `mt-${createHash('sha256').update(owner).digest('hex').slice(0, 12)}`;

export interface FirewallRule {
  chain: 'INPUT' | 'DOCKER-USER';
  spec: string[];
}

/** The rules that cut one bridge off the host and the link-local range (pure: what gets installed). */
export function isolationRules(bridge: string): FirewallRule[] {
  const reject = ['-j', 'REJECT', '--reject-with', 'icmp-port-unreachable'];
  return [
    // NEW only: the host may still open a connection to a container (the replies come back in on the bridge).
    { chain: 'INPUT', spec: ['-i', bridge, '-m', 'conntrack', '--ctstate', 'NEW,INVALID', ...reject] },
    { chain: 'DOCKER-USER', spec: ['-i', bridge, '-m', 'conntrack', '--ctstate', 'DNAT', ...reject] },
    { chain: 'DOCKER-USER', spec: ['-i', bridge, '-d', '169.254.0.0/16', ...reject] },
  ];
}

/** Network isolation could not be set up: a network-enabled task must not run without it. */
export class NetworkIsolationError extends Error {
  constructor(owner: string, cause: unknown) {
    super(`network isolation for ${owner} could not be set up on this node (iptables, run as root in the host's network namespace): ${messageOf(cause)}`, {
      cause,
    });
    this.name = 'NetworkIsolationError';
  }
}

/** Upper bound of one iptables call (it waits for the xtables lock with -w). */
const IPTABLES_TIMEOUT_MS = 10_000;
/** Most copies of one rule removed (a rule inserted twice by a crash between check and insert). */
const RULE_COPIES_MAX = 16;

function iptables(args: string[]): Promise<{ ok: boolean; stderr: string }> {
  return new Promise((resolve, reject) =>
    execFile('iptables', ['-w', ...args], { timeout: IPTABLES_TIMEOUT_MS }, (err, _stdout, stderr) => {
      if (!err) return resolve({ ok: true, stderr });
      // Exit status 1: the rule does not exist (-C, -D). Anything else (no binary, no permission) is a failure.
      if (typeof err.code === 'number' && err.code === 1) return resolve({ ok: false, stderr });
      reject(new Error(`iptables ${args.join(' ')}: ${stderr.trim() || messageOf(err)}`));
    }),
  );
}

/** Inserts a rule at the top of its chain unless it is there already (idempotent). */
async function ensureRule(rule: FirewallRule): Promise<void> {
  if ((await iptables(['-C', rule.chain, ...rule.spec])).ok) return;
  const inserted = await iptables(['-I', rule.chain, '1', ...rule.spec]);
  if (!inserted.ok) throw new Error(`iptables -I ${rule.chain} ${rule.spec.join(' ')}: ${inserted.stderr.trim()}`);
}

async function removeRule(rule: FirewallRule): Promise<void> {
  for (let i = 0; i < RULE_COPIES_MAX; i++) if (!(await iptables(['-D', rule.chain, ...rule.spec])).ok) return;
}

function statusOf(err: unknown): number | undefined {
  const status: unknown = typeof err === 'object' && err !== null ? Reflect.get(err, 'statusCode') : undefined;
  return typeof status === 'number' ? status : undefined;
}

/** The owners' networks of this node's Docker engine: created (rules first) once per owner and process, removed with their rules. */
export class TenantNetworks {
  private readonly ready = new Map<string, Promise<string>>();
  private readonly owners = new KeyedMutex<string>();

  /** `enabled` false: this node offers no network (NODE_NETWORK=false, an engine without bridge); every ensure fails. */
  constructor(
    private readonly docker: Docker,
    private readonly enabled = true,
  ) {}

  /** The network a network-enabled task of `owner` joins, isolated before it is returned. */
  ensure(owner: string): Promise<string> {
    if (!this.enabled) {
      // The scheduler places no network-enabled function on such a node (NodeRegistered.network false); this is the check behind it.
      return Promise.reject(new NetworkIsolationError(owner, new Error('this node offers no network (NODE_NETWORK=false: its engine runs without bridge)')));
    }
    let network = this.ready.get(owner);
    if (!network) {
      network = this.owners.run(owner, () => this.create(owner));
      network.catch(() => this.ready.delete(owner));
      this.ready.set(owner, network);
    }
    return network;
  }

  private async create(owner: string): Promise<string> {
    const name = tenantNetworkName(owner);
    const bridge = bridgeNameOf(owner);
    try {
      for (const rule of isolationRules(bridge)) await ensureRule(rule);
    } catch (err) {
      throw new NetworkIsolationError(owner, err);
    }
    const existing = await this.inspect(name);
    if (existing) {
      const bridgeInUse = existing.Options?.['com.docker.network.bridge.name'];
      if (bridgeInUse !== bridge)
        throw new NetworkIsolationError(owner, new Error(`network ${name} exists with bridge ${bridgeInUse ?? '(default)'}, not ${bridge}`));
      return name;
    }
    try {
      await this.docker.createNetwork({
        Name: name,
        Driver: 'bridge',
        CheckDuplicate: true,
        Labels: { [NETWORK_OWNER_LABEL]: owner },
        Options: { 'com.docker.network.bridge.name': bridge },
      });
    } catch (err) {
      // Another node process on this engine created it meanwhile.
      if (statusOf(err) !== 409) throw err;
    }
    return name;
  }

  private async inspect(name: string): Promise<Docker.NetworkInspectInfo | undefined> {
    try {
      return await this.docker.getNetwork(name).inspect();
    } catch (err) {
      if (statusOf(err) === 404) return undefined;
      throw err;
    }
  }

  /** Removes an owner's network (it must have no container left) and then its rules. */
  async remove(owner: string): Promise<void> {
    await this.owners.run(owner, async () => {
      this.ready.delete(owner);
      try {
        await this.docker.getNetwork(tenantNetworkName(owner)).remove();
      } catch (err) {
        if (statusOf(err) !== 404) throw err;
      }
      for (const rule of isolationRules(bridgeNameOf(owner))) await removeRule(rule);
    });
  }
}
