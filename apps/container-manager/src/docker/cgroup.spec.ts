import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findCgroupPaths, readCgroup, readCgroupSync, readCpuQuota, readMemoryLimit } from './cgroup';

/** Fake cgroup trees for the layouts met in the wild (the real v1 tree is covered by the integration tests). */
describe('cgroup counters', () => {
  let root: string;
  const id = 'a'.repeat(64);
  const write = (path: string, text: string) => {
    mkdirSync(join(root, path, '..'), { recursive: true });
    writeFileSync(join(root, path), text);
  };
  beforeEach(() => (root = mkdtempSync(join(tmpdir(), 'mesh-cgroup-'))));
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  it('reads v1 with separate cpu and cpuacct mounts (cgroupfs driver)', async () => {
    write(`cpuacct/docker/${id}/cpuacct.usage`, '123456789\n');
    write(`memory/docker/${id}/memory.usage_in_bytes`, '4096\n');
    write(`memory/docker/${id}/memory.max_usage_in_bytes`, '8192\n');
    write(`memory/docker/${id}/memory.oom_control`, 'oom_kill_disable 0\nunder_oom 0\noom_kill 2\n');
    write(`memory/docker/${id}/memory.limit_in_bytes`, '67108864\n');
    write(`cpu/docker/${id}/cpu.cfs_quota_us`, '50000\n');
    write(`cpu/docker/${id}/cpu.cfs_period_us`, '100000\n');
    const paths = findCgroupPaths(id, root)!;
    expect(paths.version).toBe(1);
    expect(readCgroupSync(paths, true)).toEqual({ cpuNanosTotal: 123456789, memoryBytes: 4096, memoryBytesMax: 8192, oomKills: 2 });
    expect(await readCgroup(paths)).toEqual({ cpuNanosTotal: 123456789, memoryBytes: 4096, memoryBytesMax: 8192, oomKills: 2 });
    expect(await readCpuQuota(id, root)).toEqual({ quotaUs: 50000, periodUs: 100000 });
    expect(await readMemoryLimit(id, root)).toBe(67108864);
  });

  it('reads v1 with a joint cpu,cpuacct mount and the systemd driver layout', () => {
    write(`cpu,cpuacct/system.slice/docker-${id}.scope/cpuacct.usage`, '42\n');
    write(`memory/system.slice/docker-${id}.scope/memory.usage_in_bytes`, '7\n');
    const paths = findCgroupPaths(id, root)!;
    expect(readCgroupSync(paths)).toMatchObject({ cpuNanosTotal: 42, memoryBytes: 7 });
  });

  it('reads v2 (unified): usage_usec in ns, memory.current, oom_kill from memory.events', async () => {
    write('cgroup.controllers', 'cpu memory pids\n');
    write(`system.slice/docker-${id}.scope/cpu.stat`, 'usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n');
    write(`system.slice/docker-${id}.scope/memory.current`, '2048\n');
    write(`system.slice/docker-${id}.scope/memory.events`, 'low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n');
    write(`system.slice/docker-${id}.scope/cpu.max`, '35000 100000\n');
    write(`system.slice/docker-${id}.scope/memory.max`, '1048576\n');
    const paths = findCgroupPaths(id, root)!;
    expect(paths.version).toBe(2);
    expect(readCgroupSync(paths, true)).toEqual({ cpuNanosTotal: 1_500_000, memoryBytes: 2048, oomKills: 1 });
    expect(await readCgroup(paths)).toEqual({ cpuNanosTotal: 1_500_000, memoryBytes: 2048, oomKills: 1 });
    expect(await readCpuQuota(id, root)).toEqual({ quotaUs: 35000, periodUs: 100000 });
    expect(await readMemoryLimit(id, root)).toBe(1048576);
  });

  it('finds nothing for an unknown container (the stats API is the fallback) and reads nothing once it is gone', () => {
    write(`cpuacct/docker/${id}/cpuacct.usage`, '1\n');
    expect(findCgroupPaths('b'.repeat(64), root)).toBeUndefined();
    const paths = findCgroupPaths(id, root)!;
    rmSync(join(root, 'cpuacct'), { recursive: true });
    expect(readCgroupSync(paths)).toBeUndefined();
  });
});
