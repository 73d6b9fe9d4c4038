import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/** One reading of a container's counters. */
export interface CgroupReading {
  /** Cumulative CPU time of the container in ns (all cores). */
  cpuNanosTotal: number;
  memoryBytes: number;
  /** High-water mark since the last reset (v1 memory.max_usage_in_bytes), when the kernel offers it. */
  memoryBytesMax?: number;
  /** Cumulative OOM kills in the container's cgroup, when the kernel offers it. */
  oomKills?: number;
}

/** Where one container's counters live; undefined when no cgroup folder was found (use the stats API). */
export interface CgroupPaths {
  version: 1 | 2;
  cpu: string;
  memory: string;
}

const ROOT = process.env.MESH_CGROUP_ROOT ?? '/sys/fs/cgroup';

/**
 * Finds the cgroup folders of a Docker container: v1 (cgroupfs driver `docker/<id>`, systemd driver
 * `system.slice/docker-<id>.scope`; cpuacct mounted alone or as `cpu,cpuacct`) and v2 (unified).
 * Detected per container at run time: nothing is assumed about the machine.
 */
export function findCgroupPaths(dockerId: string, root = ROOT): CgroupPaths | undefined {
  const leaves = [`docker/${dockerId}`, `system.slice/docker-${dockerId}.scope`];
  if (existsSync(join(root, 'cgroup.controllers'))) {
    for (const leaf of leaves) {
      const dir = join(root, leaf);
      if (existsSync(join(dir, 'cpu.stat'))) return { version: 2, cpu: dir, memory: dir };
    }
    return undefined;
  }
  for (const cpuMount of ['cpuacct', 'cpu,cpuacct', 'cpuacct,cpu']) {
    for (const leaf of leaves) {
      const cpu = join(root, cpuMount, leaf);
      if (!existsSync(join(cpu, 'cpuacct.usage'))) continue;
      const memory = join(root, 'memory', leaf);
      return { version: 1, cpu, memory };
    }
  }
  return undefined;
}

async function readInt(path: string): Promise<number | undefined> {
  try {
    const value = Number((await readFile(path, 'utf8')).trim());
    return Number.isFinite(value) ? value : undefined;
  } catch {
    return undefined;
  }
}

async function readKeyed(path: string): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  try {
    for (const line of (await readFile(path, 'utf8')).split('\n')) {
      const [key, value] = line.trim().split(/\s+/);
      if (key && value !== undefined && Number.isFinite(Number(value))) out.set(key, Number(value));
    }
  } catch {
    // absent on this kernel
  }
  return out;
}

function readIntSync(path: string): number | undefined {
  try {
    const value = Number(readFileSync(path, 'utf8').trim());
    return Number.isFinite(value) ? value : undefined;
  } catch {
    return undefined;
  }
}

function readKeyedSync(path: string): Map<string, number> {
  const out = new Map<string, number>();
  try {
    for (const line of readFileSync(path, 'utf8').split('\n')) {
      const [key, value] = line.trim().split(/\s+/);
      if (key && value !== undefined && Number.isFinite(Number(value))) out.set(key, Number(value));
    }
  } catch {
    // absent on this kernel
  }
  return out;
}

/**
 * The sampler's hot path: cgroup files are tiny in-kernel values that never block, so they are read
 * synchronously (a promise and a thread-pool hop per file cost more than the read itself).
 * `withOom` adds the OOM kill counter (only needed around a task run).
 */
export function readCgroupSync(paths: CgroupPaths, withOom = false): CgroupReading | undefined {
  if (paths.version === 1) {
    const cpu = readIntSync(join(paths.cpu, 'cpuacct.usage'));
    if (cpu === undefined) return undefined;
    return {
      cpuNanosTotal: cpu,
      memoryBytes: readIntSync(join(paths.memory, 'memory.usage_in_bytes')) ?? 0,
      memoryBytesMax: readIntSync(join(paths.memory, 'memory.max_usage_in_bytes')),
      oomKills: withOom ? readKeyedSync(join(paths.memory, 'memory.oom_control')).get('oom_kill') : undefined,
    };
  }
  const usageUsec = readKeyedSync(join(paths.cpu, 'cpu.stat')).get('usage_usec');
  if (usageUsec === undefined) return undefined;
  return {
    cpuNanosTotal: usageUsec * 1000,
    memoryBytes: readIntSync(join(paths.memory, 'memory.current')) ?? 0,
    oomKills: withOom ? readKeyedSync(join(paths.memory, 'memory.events')).get('oom_kill') : undefined,
  };
}

/** Starts a new high-water window (v1 only: writing 0 resets memory.max_usage_in_bytes). */
export function resetMemoryMaxSync(paths: CgroupPaths): void {
  if (paths.version !== 1) return;
  try {
    writeFileSync(join(paths.memory, 'memory.max_usage_in_bytes'), '0');
  } catch {
    // the cgroup is gone or the kernel refuses: the window max falls back to the end points
  }
}

/** Reads the counters; undefined when the cgroup is gone (container stopped). */
export async function readCgroup(paths: CgroupPaths): Promise<CgroupReading | undefined> {
  if (paths.version === 1) {
    const [cpu, memory, memoryMax, oom] = await Promise.all([
      readInt(join(paths.cpu, 'cpuacct.usage')),
      readInt(join(paths.memory, 'memory.usage_in_bytes')),
      readInt(join(paths.memory, 'memory.max_usage_in_bytes')),
      readKeyed(join(paths.memory, 'memory.oom_control')),
    ]);
    if (cpu === undefined) return undefined;
    return { cpuNanosTotal: cpu, memoryBytes: memory ?? 0, memoryBytesMax: memoryMax, oomKills: oom.get('oom_kill') };
  }
  const [stat, memory, events] = await Promise.all([
    readKeyed(join(paths.cpu, 'cpu.stat')),
    readInt(join(paths.memory, 'memory.current')),
    readKeyed(join(paths.memory, 'memory.events')),
  ]);
  const usageUsec = stat.get('usage_usec');
  if (usageUsec === undefined) return undefined;
  return { cpuNanosTotal: usageUsec * 1000, memoryBytes: memory ?? 0, oomKills: events.get('oom_kill') };
}

/** Starts a new high-water window (v1 only: writing 0 resets memory.max_usage_in_bytes). */
export async function resetMemoryMax(paths: CgroupPaths): Promise<void> {
  if (paths.version !== 1) return;
  await writeFile(join(paths.memory, 'memory.max_usage_in_bytes'), '0').catch(() => undefined);
}

/** CFS quota/period as the kernel applied them (for tests and verification). */
export async function readCpuQuota(dockerId: string, root = ROOT): Promise<{ quotaUs: number; periodUs: number } | undefined> {
  if (existsSync(join(root, 'cgroup.controllers'))) {
    for (const leaf of [`docker/${dockerId}`, `system.slice/docker-${dockerId}.scope`]) {
      try {
        const [quota, period] = (await readFile(join(root, leaf, 'cpu.max'), 'utf8')).trim().split(/\s+/);
        return { quotaUs: quota === 'max' ? -1 : Number(quota), periodUs: Number(period) };
      } catch {
        // try the next layout
      }
    }
    return undefined;
  }
  for (const mount of ['cpu', 'cpu,cpuacct', 'cpuacct,cpu']) {
    for (const leaf of [`docker/${dockerId}`, `system.slice/docker-${dockerId}.scope`]) {
      const quota = await readInt(join(root, mount, leaf, 'cpu.cfs_quota_us'));
      const period = await readInt(join(root, mount, leaf, 'cpu.cfs_period_us'));
      if (quota !== undefined && period !== undefined) return { quotaUs: quota, periodUs: period };
    }
  }
  return undefined;
}

/** Memory limit as the kernel applied it. */
export async function readMemoryLimit(dockerId: string, root = ROOT): Promise<number | undefined> {
  if (existsSync(join(root, 'cgroup.controllers'))) {
    for (const leaf of [`docker/${dockerId}`, `system.slice/docker-${dockerId}.scope`]) {
      const value = await readInt(join(root, leaf, 'memory.max'));
      if (value !== undefined) return value;
    }
    return undefined;
  }
  for (const leaf of [`docker/${dockerId}`, `system.slice/docker-${dockerId}.scope`]) {
    const value = await readInt(join(root, 'memory', leaf, 'memory.limit_in_bytes'));
    if (value !== undefined) return value;
  }
  return undefined;
}
