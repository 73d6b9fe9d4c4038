import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Command } from 'commander';
import { connect } from 'nats';
import { z } from 'zod';
import { ensureMacKeyRing } from '@mesh/audit';
import { messageOf } from '@mesh/common';
import { SERVICES, healthReplySchema } from '@mesh/contracts';
import { authConfPath, ensureStackIdentities, natsAuthOptionsFromFile, operatorCredsPath, secretsDir, writeRoutesConf } from '@mesh/identity';
import { CliError, UsageError, emit, progress, table } from '../output';
import { DATA_DIR, ROOT, provision } from '../stack';

/**
 * `mesh cluster up|down|status`: mesh on Docker Swarm (infra/swarm/stack.yml, docs/deploy.md).
 * Everything a deployment needs is made here or found: the swarm (initialised when the engine is in
 * none, and left again by `down`), the credentials (libs/identity, under <data dir>/swarm/<stack>/),
 * the images (scripts/images.sh), then `docker stack deploy` and a wait until every service is healthy.
 */

const STACK_FILE = join(ROOT, 'infra', 'swarm', 'stack.yml');
const IMAGES_SCRIPT = join(ROOT, 'scripts', 'images.sh');
/** Docker's limit on a stack name is the service name's (63) minus the longest service name here. */
const STACK_NAME = /^[a-z][a-z0-9-]{0,29}$/;
const NATS_SERVERS = 3;
const DEFAULT_NATS_PORT = 4222;
const UP_TIMEOUT_S_DEFAULT = 600;
const DOWN_TIMEOUT_MS = 120_000;
/** How long `down` tries to remove docker_gwbridge after leaving the swarm. */
const GWBRIDGE_REMOVE_TIMEOUT_MS = 30_000;
const POLL_MS = 2000;
const DOCKER_OUTPUT_MAX_BYTES = 16 * 1024 * 1024;
/** The label Swarm puts on everything of a stack (services, networks, secrets, configs, volumes, containers). */
const STACK_LABEL = 'com.docker.stack.namespace';
/** The label the container-manager puts on every task container (its NODE_ID). */
const NODE_LABEL = 'mesh.node';
/** The node label the container-manager's placement asks for (stack.yml). */
const WORKER_LABEL = 'mesh.worker';
const SERVICE_IMAGE_DEFAULT = `mesh/service:${(JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version}`;
const NATS_IMAGE_DEFAULT = 'mesh/nats:2.9';
const TASK_BASE_IMAGE_DEFAULT = 'mesh/task-base:latest';
/** The stack's services: the three NATS servers and the five mesh services. */
const STACK_SERVICES = [...Array.from({ length: NATS_SERVERS }, (_, i) => `nats-${i + 1}`), ...SERVICES];

/** What `up` did that `down` undoes: kept in <data dir>/swarm/<stack>/cluster.json. */
const stateSchema = z.object({
  stack: z.string(),
  /** mesh ran `docker swarm init`: `down` leaves the swarm again. */
  swarmInitialised: z.boolean(),
  /** The node mesh labelled mesh.worker=true (none was): `down` removes the label. */
  labelledNode: z.string().optional(),
  natsUrl: z.string(),
});
type ClusterState = z.output<typeof stateSchema>;

/** Where `up` keeps a stack's credentials and state (`dataDir`: MESH_DATA_DIR of the process that ran it). */
export const clusterDir = (stack: string, dataDir = DATA_DIR) => join(dataDir, 'swarm', stack);
const statePath = (stack: string) => join(clusterDir(stack), 'cluster.json');

function readState(stack: string): ClusterState | undefined {
  if (!existsSync(statePath(stack))) return undefined;
  try {
    return stateSchema.parse(JSON.parse(readFileSync(statePath(stack), 'utf8')));
  } catch (err) {
    throw new CliError(`${statePath(stack)} cannot be read: ${messageOf(err)}`, 'remove it if no stack of that name runs');
  }
}

function writeState(state: ClusterState): void {
  mkdirSync(clusterDir(state.stack), { recursive: true, mode: 0o700 });
  writeFileSync(statePath(state.stack), `${JSON.stringify(state, null, 2)}\n`);
}

interface DockerResult {
  code: number;
  out: string;
  err: string;
}

/** One docker CLI call; `check` turns a failure into a CLI error naming the command and Docker's message. */
function docker(args: string[], options: { env?: NodeJS.ProcessEnv; check?: boolean; inherit?: boolean } = {}): DockerResult {
  const result = spawnSync('docker', args, {
    encoding: 'utf8',
    env: options.env ?? process.env,
    maxBuffer: DOCKER_OUTPUT_MAX_BYTES,
    stdio: options.inherit ? ['ignore', 'inherit', 'inherit'] : ['ignore', 'pipe', 'pipe'],
  });
  if (result.error) {
    const missing = (result.error as NodeJS.ErrnoException).code === 'ENOENT';
    throw new CliError(
      missing ? 'docker is not installed' : `docker ${args[0]}: ${result.error.message}`,
      missing ? 'install Docker (apt-get install docker.io) and start its engine' : undefined,
    );
  }
  const r = { code: result.status ?? 1, out: result.stdout ?? '', err: result.stderr ?? '' };
  if ((options.check ?? true) && r.code !== 0) throw new CliError(`docker ${args.slice(0, 2).join(' ')} failed: ${r.err.trim() || `exit ${r.code}`}`);
  return r;
}

const lines = (text: string) =>
  text
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);

const swarmInfoSchema = z.object({ LocalNodeState: z.string(), ControlAvailable: z.boolean(), NodeID: z.string() });
type SwarmInfo = z.output<typeof swarmInfoSchema>;

/** The engine's swarm state, with a clear error when no engine answers. */
function swarmInfo(): SwarmInfo {
  const r = docker(['info', '--format', '{{json .Swarm}}'], { check: false });
  if (r.code !== 0) {
    throw new CliError(
      `no Docker engine answers${process.env.DOCKER_HOST ? ` at ${process.env.DOCKER_HOST}` : ''}: ${r.err.trim().split('\n')[0] ?? ''}`,
      'start the Docker engine (as root: `bash infra/local/provision.sh docker`, or systemctl start docker), or set DOCKER_HOST',
    );
  }
  return swarmInfoSchema.parse(JSON.parse(r.out));
}

function requireManager(info: SwarmInfo): void {
  if (info.LocalNodeState !== 'active') throw new CliError(`this engine is not in a swarm (state ${info.LocalNodeState})`, 'deploy with `mesh cluster up`');
  if (!info.ControlAvailable) throw new CliError('this engine is a swarm worker: stacks are managed from a manager node', 'run the command on a manager');
}

function stackNameOf(value: string | undefined): string {
  const stack = value ?? process.env.MESH_STACK ?? 'mesh';
  if (!STACK_NAME.test(stack)) throw new UsageError(`--stack: "${stack}" must match ${STACK_NAME.source} (a short lower-case name, e.g. mesh)`);
  return stack;
}

function natsPortOf(value: string | undefined): number {
  const raw = value ?? process.env.NATS_PORT ?? String(DEFAULT_NATS_PORT);
  const port = Number(raw);
  if (!Number.isInteger(port) || port < 1 || port > 65535 - NATS_SERVERS)
    throw new UsageError(`--nats-port: "${raw}" must be a port in 1..${65535 - NATS_SERVERS} (the servers publish it and the next ${NATS_SERVERS - 1})`);
  return port;
}

const natsPorts = (base: number) => Array.from({ length: NATS_SERVERS }, (_, i) => base + i);
const natsUrlOf = (base: number) =>
  natsPorts(base)
    .map((p) => `nats://127.0.0.1:${p}`)
    .join(',');

/** Whether `port` can be bound on every address of this machine. */
export async function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '0.0.0.0', () => srv.close(() => resolve(true)));
  });
}

/** The stack's services as `docker service ls` reports them: replicas running (healthy: Swarm counts a task only once its health check passes) and desired. */
export interface ClusterService {
  name: string;
  mode: string;
  running: number;
  desired: number;
  healthy: boolean;
  image: string;
  ports: string;
  /** The newest task's state and error when it is not healthy (e.g. "Rejected: No such image"). */
  problem?: string;
}

function stackServices(stack: string): ClusterService[] {
  const r = docker(['service', 'ls', '--filter', `label=${STACK_LABEL}=${stack}`, '--format', '{{.Name}}\t{{.Mode}}\t{{.Replicas}}\t{{.Image}}\t{{.Ports}}']);
  return lines(r.out)
    .map((line) => {
      const [name = '', mode = '', replicas = '', image = '', ports = ''] = line.split('\t');
      const [running, desired] = (replicas.match(/^(\d+)\/(\d+)/)?.slice(1) ?? ['0', '0']).map(Number);
      return { name, mode, running, desired, healthy: desired > 0 && running === desired, image, ports };
    })
    .sort((a, b) => a.name.localeCompare(b.name));
}

/** Why a service is not healthy: its newest task that should run, its state and error. */
function taskProblem(service: string): string | undefined {
  const r = docker(['service', 'ps', service, '--no-trunc', '--format', '{{.CurrentState}}\t{{.Error}}'], { check: false });
  const first = lines(r.out)[0];
  return first ? first.replace('\t', ' ').trim() : undefined;
}

function withProblems(services: ClusterService[]): ClusterService[] {
  return services.map((s) => (s.healthy ? s : { ...s, problem: taskProblem(s.name) }));
}

function imagePresent(image: string): boolean {
  return docker(['image', 'inspect', image], { check: false }).code === 0;
}

/**
 * The images the stack runs, built here (scripts/images.sh) when missing and not named by the user,
 * or always with `build` (Docker's layer cache makes that seconds when this checkout did not change:
 * an image present but built from older code would otherwise be deployed as it is).
 */
function ensureImages(build: boolean): { service: string; nats: string; taskBase: string } {
  const service = process.env.MESH_SERVICE_IMAGE ?? SERVICE_IMAGE_DEFAULT;
  const nats = process.env.MESH_NATS_IMAGE ?? NATS_IMAGE_DEFAULT;
  const taskBase = process.env.MESH_BASE_IMAGE ?? TASK_BASE_IMAGE_DEFAULT;
  const missingService = !imagePresent(service) || (build && !process.env.MESH_SERVICE_IMAGE);
  const missingNats = !imagePresent(nats) || (build && !process.env.MESH_NATS_IMAGE);
  if (missingService || missingNats) {
    const own = (missingService && !process.env.MESH_SERVICE_IMAGE) || (missingNats && !process.env.MESH_NATS_IMAGE);
    if (!own)
      throw new CliError(`image ${missingService ? service : nats} is not on this engine`, 'pull or load it, or unset MESH_SERVICE_IMAGE / MESH_NATS_IMAGE');
    const args = missingService ? [] : ['--nats-only'];
    progress(`building the images (scripts/images.sh ${args.join(' ')}; the first build takes minutes)`);
    const started = Date.now();
    const env = { ...process.env, MESH_SERVICE_IMAGE: undefined, MESH_NATS_IMAGE: undefined };
    const r = spawnSync('bash', [IMAGES_SCRIPT, ...args], { stdio: ['ignore', 'inherit', 'inherit'], env });
    if (r.status !== 0) throw new CliError('building the images failed (scripts/images.sh)', 'read the lines above; `npm run images` runs the same');
    progress(`images built in ${Math.round((Date.now() - started) / 1000)} s`);
  }
  // The task base image every worker's engine needs (provision.sh builds it when missing).
  if (!imagePresent(taskBase)) {
    if (process.env.MESH_BASE_IMAGE) throw new CliError(`the task base image ${taskBase} is not on this engine`, 'build or load it on every worker node');
    provision('docker');
  }
  return { service, nats, taskBase };
}

/** The swarm: initialised when the engine is in none (remembered, so `down` leaves it again). */
function ensureSwarm(advertiseAddr: string | undefined): { info: SwarmInfo; initialised: boolean } {
  const info = swarmInfo();
  if (info.LocalNodeState === 'active') {
    requireManager(info);
    return { info, initialised: false };
  }
  if (info.LocalNodeState !== 'inactive')
    throw new CliError(`the engine's swarm state is ${info.LocalNodeState}`, 'see `docker info`; `docker swarm leave --force` resets a broken one');
  progress('docker swarm init (this engine was in no swarm; `mesh cluster down` leaves it again)');
  docker(['swarm', 'init', ...(advertiseAddr ? ['--advertise-addr', advertiseAddr] : [])]);
  return { info: swarmInfo(), initialised: true };
}

/** A node labelled for the container-manager: this one when none is (remembered for `down`). */
function ensureWorkerLabel(selfNodeId: string): string | undefined {
  const nodes = lines(docker(['node', 'ls', '-q']).out);
  const labelled = nodes.filter((id) => docker(['node', 'inspect', '--format', `{{index .Spec.Labels "${WORKER_LABEL}"}}`, id]).out.trim() === 'true');
  if (labelled.length > 0) return undefined;
  progress(`no node has the label ${WORKER_LABEL}=true: labelling this one (the container-manager runs on labelled nodes)`);
  docker(['node', 'update', '--label-add', `${WORKER_LABEL}=true`, selfNodeId]);
  return selfNodeId;
}

/** The credentials (services, operator, MAC and HTTP token keys) under <data dir>/swarm/<stack>/, made when missing. */
async function ensureCredentials(stack: string): Promise<{ secrets: string; authConf: string; routesConf: string; operator: string }> {
  const dir = clusterDir(stack);
  const ids = ensureStackIdentities(dir);
  // A new stack's log is empty: the first key covers it from the start.
  await ensureMacKeyRing(join(secretsDir(dir), 'ledger-mac.key'), () => Promise.resolve(0n));
  // The three servers' routes (service names on the stack's network), authenticated with the route secret.
  const routesConf = writeRoutesConf(dir, ['nats-1:6222', 'nats-2:6222', 'nats-3:6222']);
  return { secrets: secretsDir(dir), authConf: ids.authConf, routesConf, operator: ids.operator };
}

const healthAnswerSchema = z.object({ ok: z.literal(true), data: healthReplySchema.pick({ status: true }) });

/** Every mesh service answers health through the published port, as the operator: the CLI can talk to the stack. */
async function checkThroughNats(natsUrl: string, operator: string, deadline: number): Promise<void> {
  for (;;) {
    const missing: string[] = [];
    const nc = await connect({
      servers: natsUrl.split(','),
      timeout: 3000,
      reconnect: false,
      noAsyncTraces: true,
      ...natsAuthOptionsFromFile(operator),
    }).catch(() => undefined);
    if (nc) {
      for (const service of SERVICES) {
        const reply = await nc.request(`mesh.api.${service}.health`, new Uint8Array(), { timeout: 3000 }).catch(() => undefined);
        const answer = reply ? healthAnswerSchema.safeParse(JSON.parse(reply.string())) : undefined;
        if (!answer?.success || answer.data.data.status !== 'ok') missing.push(service);
      }
      await nc.close();
    } else missing.push('nats');
    if (missing.length === 0) return;
    if (Date.now() > deadline) throw new CliError(`through ${natsUrl}: no healthy answer from ${missing.join(', ')}`, 'see `mesh cluster status`');
    await sleep(POLL_MS);
  }
}

async function up(opts: { stack?: string; natsPort?: string; advertiseAddr?: string; timeout: string; build?: boolean }): Promise<void> {
  const stack = stackNameOf(opts.stack);
  const port = natsPortOf(opts.natsPort);
  const timeoutS = Number(opts.timeout);
  if (!Number.isInteger(timeoutS) || timeoutS < 10 || timeoutS > 3600) throw new UsageError(`--timeout: "${opts.timeout}" must be whole seconds in 10..3600`);
  const previous = readState(stack);
  // Before anything is made: the ports a new stack publishes must be free.
  const before = swarmInfo();
  if (before.LocalNodeState !== 'active' || !before.ControlAvailable || stackServices(stack).length === 0) {
    const busy: number[] = [];
    for (const p of natsPorts(port)) if (!(await portFree(p))) busy.push(p);
    if (busy.length > 0)
      throw new CliError(`port ${busy.join(', ')} in use on this machine`, `choose other ports: --nats-port <port> (it and the next ${NATS_SERVERS - 1})`);
  }
  const { info, initialised } = ensureSwarm(opts.advertiseAddr);
  const natsUrl = natsUrlOf(port);
  // Written before anything else is made, so `down` can undo a half-finished `up`.
  const state: ClusterState = { stack, swarmInitialised: initialised || (previous?.swarmInitialised ?? false), labelledNode: previous?.labelledNode, natsUrl };
  writeState(state);
  const labelled = ensureWorkerLabel(info.NodeID);
  if (labelled) writeState({ ...state, labelledNode: labelled });
  const images = ensureImages(opts.build === true);
  const creds = await ensureCredentials(stack);
  // The wait is measured from here: image builds (minutes the first time) do not count.
  const started = Date.now();
  const deadline = started + timeoutS * 1000;
  // Swarm configs cannot change: a new authorization block (a tenant added) gets a new config name.
  const versionOf = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex').slice(0, 12);
  const authVersion = versionOf(authConfPath(clusterDir(stack)));
  const [p1, p2, p3] = natsPorts(port).map(String);
  progress(`docker stack deploy ${stack} (infra/swarm/stack.yml; NATS on ports ${natsPorts(port).join(', ')})`);
  docker(['stack', 'deploy', '--resolve-image', 'never', '--prune', '-c', STACK_FILE, stack], {
    inherit: true,
    env: {
      ...process.env,
      MESH_STACK: stack,
      MESH_NODE_PREFIX: stack,
      MESH_SECRETS_DIR: creds.secrets,
      MESH_AUTH_CONF: creds.authConf,
      MESH_AUTH_VERSION: authVersion,
      MESH_ROUTES_CONF: creds.routesConf,
      MESH_ROUTES_VERSION: versionOf(creds.routesConf),
      MESH_NATS_PORT_1: p1,
      MESH_NATS_PORT_2: p2,
      MESH_NATS_PORT_3: p3,
      MESH_SERVICE_IMAGE: images.service,
      MESH_NATS_IMAGE: images.nats,
      MESH_BASE_IMAGE: images.taskBase,
    },
  });

  progress(`waiting until every service is healthy (at most ${timeoutS} s)`);
  const reported = new Set<string>();
  for (;;) {
    const services = stackServices(stack);
    for (const s of services) {
      if (s.healthy && !reported.has(s.name)) {
        reported.add(s.name);
        progress(`  ${s.name}: ${s.running}/${s.desired} healthy (${Math.round((Date.now() - started) / 1000)} s)`);
      }
    }
    if (services.length === STACK_SERVICES.length && services.every((s) => s.healthy)) break;
    if (Date.now() > deadline) {
      const late = withProblems(services.filter((s) => !s.healthy));
      throw new CliError(
        `not healthy after ${timeoutS} s: ${late.map((s) => `${s.name} ${s.running}/${s.desired}${s.problem ? ` (${s.problem})` : ''}`).join('; ')}`,
        `see \`mesh cluster status --stack ${stack}\` and \`docker service logs ${stack}_<service>\``,
      );
    }
    await sleep(POLL_MS);
  }
  await checkThroughNats(natsUrl, creds.operator, deadline);
  const seconds = Math.round((Date.now() - started) / 1000);
  emit({ stack, natsUrl, creds: creds.operator, seconds }, () => {
    console.log(`stack ${stack} is up and healthy in ${seconds} s. Talk to it with:`);
    console.log(`  export NATS_URL=${natsUrl} MESH_CREDS=${operatorCredsPath(clusterDir(stack))}`);
  });
}

async function status(opts: { stack?: string }): Promise<void> {
  const stack = stackNameOf(opts.stack);
  const info = swarmInfo();
  if (info.LocalNodeState !== 'active') throw new CliError(`this engine is not in a swarm: no stack ${stack} here`, 'deploy it with `mesh cluster up`');
  requireManager(info);
  const services = withProblems(stackServices(stack));
  const natsUrl = readState(stack)?.natsUrl;
  emit({ stack, natsUrl, services, healthy: services.length === STACK_SERVICES.length && services.every((s) => s.healthy) }, () => {
    if (services.length === 0) {
      console.log(`stack ${stack} is not deployed`);
      return;
    }
    table(
      services.map((s) => ({
        service: s.name,
        mode: s.mode,
        replicas: `${s.running}/${s.desired}`,
        health: s.healthy ? 'healthy' : 'NOT HEALTHY',
        image: s.image,
        ports: s.ports,
        problem: s.problem ?? '',
      })),
    );
    if (natsUrl) console.log(`\nNATS: ${natsUrl} (MESH_CREDS=${operatorCredsPath(clusterDir(stack))})`);
  });
  if (services.length === 0 || !services.every((s) => s.healthy)) process.exitCode = 1;
}

/** Everything of the stack still on this engine, by kind (what `down` waits to be gone). */
export function stackLeftovers(stack: string): Record<string, string[]> {
  const filter = ['--filter', `label=${STACK_LABEL}=${stack}`];
  const taskContainers = lines(docker(['ps', '-a', '--filter', `label=${NODE_LABEL}`, '--format', `{{.ID}} {{.Label "${NODE_LABEL}"}}`]).out)
    .filter((l) => (l.split(' ')[1] ?? '').startsWith(`${stack}-`))
    .map((l) => l.split(' ')[0]);
  const info = swarmInfo();
  const swarm = info.LocalNodeState === 'active';
  const manager = swarm && info.ControlAvailable;
  return {
    services: manager ? lines(docker(['service', 'ls', '-q', ...filter]).out) : [],
    containers: lines(docker(['ps', '-aq', ...filter]).out),
    taskContainers,
    networks: lines(docker(['network', 'ls', '-q', ...filter]).out),
    volumes: lines(docker(['volume', 'ls', '-q', ...filter]).out),
    secrets: manager ? lines(docker(['secret', 'ls', '-q', ...filter]).out) : [],
    configs: manager ? lines(docker(['config', 'ls', '-q', ...filter]).out) : [],
  };
}

async function down(opts: { stack?: string }): Promise<void> {
  const stack = stackNameOf(opts.stack);
  const state = readState(stack);
  const info = swarmInfo();
  if (info.LocalNodeState === 'active') {
    requireManager(info);
    if (stackServices(stack).length > 0) {
      progress(`docker stack rm ${stack}`);
      docker(['stack', 'rm', stack]);
    }
    // Swarm removes the containers and networks in the background; volumes can go once the containers are gone.
    const deadline = Date.now() + DOWN_TIMEOUT_MS;
    for (;;) {
      const left = stackLeftovers(stack);
      if (left.taskContainers.length > 0) docker(['rm', '-f', ...left.taskContainers], { check: false });
      if (left.containers.length === 0 && left.services.length === 0) {
        if (left.volumes.length > 0) docker(['volume', 'rm', ...left.volumes], { check: false });
        if (left.secrets.length > 0) docker(['secret', 'rm', ...left.secrets], { check: false });
        if (left.configs.length > 0) docker(['config', 'rm', ...left.configs], { check: false });
        if (left.networks.length > 0) docker(['network', 'rm', ...left.networks], { check: false });
      }
      const remaining = Object.entries(stackLeftovers(stack)).filter(([, ids]) => ids.length > 0);
      if (remaining.length === 0) break;
      if (Date.now() > deadline)
        throw new CliError(
          `after ${DOWN_TIMEOUT_MS / 1000} s still left: ${remaining.map(([kind, ids]) => `${ids.length} ${kind}`).join(', ')}`,
          `run \`mesh cluster down --stack ${stack}\` again, or remove them with docker (label ${STACK_LABEL}=${stack})`,
        );
      await sleep(POLL_MS);
    }
    progress(`stack ${stack} removed: services, containers, networks, volumes, secrets and configs`);
    if (state?.labelledNode && !state.swarmInitialised) docker(['node', 'update', '--label-rm', WORKER_LABEL, state.labelledNode], { check: false });
    const others = state?.swarmInitialised ? lines(docker(['service', 'ls', '-q']).out) : [];
    if (others.length > 0) progress(`not leaving the swarm mesh initialised: ${others.length} other services run in it (another stack)`);
    else if (state?.swarmInitialised) {
      progress('docker swarm leave --force (mesh cluster up initialised this swarm)');
      docker(['swarm', 'leave', '--force']);
      // Swarm's bridge to the overlay networks, made by `swarm init`: nothing uses it any more, but
      // the engine lets go of its last endpoint (the ingress sandbox) a moment after the leave.
      const gwDeadline = Date.now() + GWBRIDGE_REMOVE_TIMEOUT_MS;
      while (lines(docker(['network', 'ls', '-q', '--filter', 'name=^docker_gwbridge$']).out).length > 0) {
        if (docker(['network', 'rm', 'docker_gwbridge'], { check: false }).code === 0) break;
        if (Date.now() > gwDeadline) {
          progress(
            `docker_gwbridge still in use after ${GWBRIDGE_REMOVE_TIMEOUT_MS / 1000} s (the engine can keep an endpoint after a swarm leave; a dockerd restart clears it): remove it with \`docker network rm docker_gwbridge\``,
          );
          break;
        }
        await sleep(POLL_MS);
      }
    }
  } else {
    // No swarm: nothing of a stack can run; only task containers a container-manager left behind.
    const left = stackLeftovers(stack);
    if (left.taskContainers.length > 0) docker(['rm', '-f', ...left.taskContainers], { check: false });
    progress(`this engine is in no swarm: no stack ${stack} to remove`);
  }
  rmSync(statePath(stack), { force: true });
  emit({ stack, removed: true }, () => console.log(`stack ${stack} is down; its credentials stay in ${clusterDir(stack)} for the next \`up\``));
}

export function registerCluster(program: Command) {
  const cluster = program
    .command('cluster')
    .description('run mesh on Docker Swarm: the stack infra/swarm/stack.yml (3 NATS servers, the five services), docs/deploy.md')
    .addHelpText(
      'after',
      `
The CLI talks to a deployed stack with the URL and credentials \`up\` prints:
  export NATS_URL=nats://127.0.0.1:4222,... MESH_CREDS=<data dir>/swarm/<stack>/secrets/nats/operator.json`,
    );
  const stackOption = ['--stack <name>', 'stack name (default: MESH_STACK, else mesh)'] as const;
  cluster
    .command('up')
    .description('deploy the stack: docker swarm init if needed, credentials, images, docker stack deploy, then wait until every service is healthy')
    .option(...stackOption)
    .option(
      '--nats-port <port>',
      `host port of the first NATS server's client port; the others take the next two (default: NATS_PORT, else ${DEFAULT_NATS_PORT})`,
    )
    .option('--advertise-addr <addr>', 'address for `docker swarm init` when this engine is in no swarm and has several')
    .option('--build', 'build the images from this checkout even when present (cached layers: seconds when nothing changed)')
    .option('--timeout <seconds>', 'how long `up` may take until every service is healthy (image builds not counted)', String(UP_TIMEOUT_S_DEFAULT))
    .addHelpText(
      'after',
      `
Credentials: made once under <data dir>/swarm/<stack>/ (libs/identity), given to the services as Swarm secrets.
Images: ${SERVICE_IMAGE_DEFAULT} and ${NATS_IMAGE_DEFAULT} are built (npm run images) when missing, or always with --build; MESH_SERVICE_IMAGE / MESH_NATS_IMAGE name others.
Tasks run on nodes labelled ${WORKER_LABEL}=true (this one is labelled when none is); each needs ${TASK_BASE_IMAGE_DEFAULT} (MESH_BASE_IMAGE).
Speed of the container-manager: MESH_IDLE_TIMEOUT_MS, MESH_SAMPLE_INTERVAL_MS; replicas: MESH_SCHEDULER_REPLICAS, MESH_SCALER_REPLICAS, MESH_LEDGER_REPLICAS, MESH_CREDIT_MANAGER_REPLICAS (2 each).`,
    )
    .action(up);
  cluster
    .command('status')
    .description("the stack's services: replicas running/desired and health (exit 1 unless all are healthy)")
    .option(...stackOption)
    .action(status);
  cluster
    .command('down')
    .description('remove the stack and its secrets, configs, volumes, networks and task containers; leave the swarm if `up` initialised it')
    .option(...stackOption)
    .addHelpText('after', '\nThe credentials under <data dir>/swarm/<stack>/ stay (the next `up` reuses them). On other nodes, volumes are removed there.')
    .action(down);
}
