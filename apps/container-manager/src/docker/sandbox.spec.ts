import { assertNonRootUser, containerCreateOptions, cpuMillisOf, cpuQuotaFor, memoryLimitsFor, newContainerId } from './sandbox';

const spec = {
  nodeId: 'n1',
  containerId: 'cabc',
  walletId: 'w1',
  functionId: 'f1',
  image: 'mesh/task-base:latest',
  cpuMillis: 500,
  memoryBytes: 64 * 1024 * 1024,
  network: undefined,
  pidsLimit: 128,
  workTmpfsBytes: 32 * 1024 * 1024,
  user: '1000:1000',
};

describe('sandbox defaults', () => {
  it('is non-root, capability-free, read-only, network-less, pids- and memory-limited, CPU by quota/period only', () => {
    const o = containerCreateOptions(spec);
    expect(o.User).toBe('1000:1000');
    expect(o.Labels).toMatchObject({ 'mesh.node': 'n1', 'mesh.container': 'cabc', 'mesh.wallet': 'w1', 'mesh.function': 'f1' });
    expect(o.HostConfig).toMatchObject({
      ReadonlyRootfs: true,
      CapDrop: ['ALL'],
      SecurityOpt: ['no-new-privileges'],
      NetworkMode: 'none',
      PidsLimit: 128,
      Memory: 64 * 1024 * 1024,
      MemorySwap: 64 * 1024 * 1024,
      CpuPeriod: 100_000,
      CpuQuota: 50_000,
      Init: true,
    });
    expect(o.HostConfig?.NanoCpus).toBeUndefined();
    expect(o.HostConfig?.Tmpfs?.['/work']).toContain('uid=1000');
  });

  it('gives network only to functions that ask for it', () => {
    expect(containerCreateOptions({ ...spec, network: 'mesh-net-acme' }).HostConfig?.NetworkMode).toBe('mesh-net-acme');
    expect(containerCreateOptions({ ...spec, network: 'mesh-net-acme' }).NetworkDisabled).toBe(false);
  });

  it('refuses root', () => {
    for (const user of ['root', '0', '0:0', 'root:root', '']) expect(() => assertNonRootUser(user)).toThrow(/must not be root/);
    expect(assertNonRootUser('1000:1000')).toBe('1000:1000');
  });

  it('converts millicores to CFS quota and back, with the kernel minimum', () => {
    expect(cpuQuotaFor(250)).toEqual({ CpuPeriod: 100_000, CpuQuota: 25_000 });
    expect(cpuQuotaFor(1)).toEqual({ CpuPeriod: 100_000, CpuQuota: 1_000 });
    expect(cpuMillisOf(35_000, 100_000)).toBe(350);
    expect(cpuMillisOf(-1, 100_000)).toBeUndefined();
    expect(memoryLimitsFor(1)).toEqual({ Memory: 8 * 1024 * 1024, MemorySwap: 8 * 1024 * 1024 });
  });

  it('makes short container ids', () => {
    expect(newContainerId()).toMatch(/^c[a-z0-9]{12}$/);
  });
});
