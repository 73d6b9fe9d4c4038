import type { ContainerCreateOptions } from 'dockerode';

/** Labels every container of a node carries; the agent only ever touches containers with its own mesh.node. */
export const LABEL = {
  node: 'mesh.node',
  container: 'mesh.container',
  wallet: 'mesh.wallet',
  function: 'mesh.function',
  /** The execution a container was created for (its first run): the execution marker until a later run writes one. */
  firstExecution: 'mesh.first-execution',
} as const;

/**
 * CPU limits use CFS quota/period only (never NanoCpus: Docker refuses to mix the two schemes on one
 * container, and `docker update` can change quota/period in place). 1 millicore = 100 us per 100 ms.
 */
export const CPU_PERIOD_US = 100_000;
/** The kernel refuses a CFS quota under 1 ms. */
export const CPU_MIN_MILLIS = 10;
/** Docker refuses a memory limit under 6 MiB. */
export const MEMORY_MIN_BYTES = 8 * 1024 * 1024;

export function cpuQuotaFor(cpuMillis: number): { CpuPeriod: number; CpuQuota: number } {
  const millis = Math.max(CPU_MIN_MILLIS, Math.floor(cpuMillis));
  return { CpuPeriod: CPU_PERIOD_US, CpuQuota: millis * (CPU_PERIOD_US / 1000) };
}

export function cpuMillisOf(quotaUs: number | undefined, periodUs: number | undefined): number | undefined {
  if (!quotaUs || quotaUs <= 0 || !periodUs) return undefined;
  return Math.round((quotaUs * 1000) / periodUs);
}

/** Memory limit and memory+swap set to the same value: the container gets no swap. */
export function memoryLimitsFor(memoryBytes: number): { Memory: number; MemorySwap: number } {
  const bytes = Math.max(MEMORY_MIN_BYTES, Math.floor(memoryBytes));
  return { Memory: bytes, MemorySwap: bytes };
}

export interface SandboxSpec {
  nodeId: string;
  containerId: string;
  walletId: string;
  functionId: string;
  image: string;
  cpuMillis: number;
  memoryBytes: number;
  /** The Docker network of a network-enabled function (its owner's isolated `mesh-net-<owner>`, tenant-network.ts); undefined: no network at all. */
  network: string | undefined;
  pidsLimit: number;
  workTmpfsBytes: number;
  user: string;
}

/** Refuses a root user: tasks never run as root, whatever the image says. */
export function assertNonRootUser(user: string): string {
  const name = user.split(':')[0];
  if (name === '' || name === '0' || name === 'root') throw new Error(`TASK_USER must not be root (got "${user}")`);
  return user;
}

/**
 * The create options of a warm task container: it only runs an idle `sleep` under docker-init;
 * tasks are `docker exec`s into it. Sandbox defaults: non-root user, no new privileges, every
 * capability dropped, read-only root filesystem with tmpfs /work and /tmp, pids limit, memory
 * limit with memory+swap equal (no swap), network `none` unless the function asks for network (then
 * its owner's isolated bridge, never Docker's default one).
 */
export function containerCreateOptions(spec: SandboxSpec): ContainerCreateOptions {
  const [uid, gid = uid] = assertNonRootUser(spec.user).split(':');
  return {
    name: `mesh-${spec.containerId}`,
    Image: spec.image,
    Entrypoint: ['sleep'],
    Cmd: ['2147483647'],
    User: spec.user,
    WorkingDir: '/work',
    Labels: {
      [LABEL.node]: spec.nodeId,
      [LABEL.container]: spec.containerId,
      [LABEL.wallet]: spec.walletId,
      [LABEL.function]: spec.functionId,
    },
    NetworkDisabled: spec.network === undefined,
    HostConfig: {
      Init: true,
      ReadonlyRootfs: true,
      Tmpfs: {
        '/work': `rw,exec,size=${spec.workTmpfsBytes},uid=${uid},gid=${gid},mode=0755`,
        '/tmp': `rw,noexec,nosuid,size=${Math.min(spec.workTmpfsBytes, 64 * 1024 * 1024)},mode=1777`,
        // The execution marker (root only, docker-engine.ts): the task can neither read nor write it.
        '/run/mesh': 'rw,noexec,nosuid,nodev,size=65536,mode=0700',
      },
      NetworkMode: spec.network ?? 'none',
      CapDrop: ['ALL'],
      SecurityOpt: ['no-new-privileges'],
      PidsLimit: spec.pidsLimit,
      ...memoryLimitsFor(spec.memoryBytes),
      ...cpuQuotaFor(spec.cpuMillis),
      RestartPolicy: { Name: 'no' },
      LogConfig: { Type: 'none', Config: {} },
    },
  };
}

/** `c` + 12 random base36 characters. */
export function newContainerId(random: () => number = Math.random): string {
  let id = 'c';
  for (let i = 0; i < 12; i++) id += Math.floor(random() * 36).toString(36);
  return id;
}
