import { WalletOpened, eventOf } from '@mesh/contracts';
import { InMemoryEventStore } from '@mesh/eventstore';
import { WalletOwners } from './wallet-owners';

const opened = (walletId: string, extra: { tenantId?: string; kind?: 'user' | 'provider' } = {}) =>
  eventOf(WalletOpened, `${walletId}-opened`, {
    walletId,
    currency: 'GRC',
    balanceAfter: '0',
    prevHash: '0'.repeat(64),
    kind: extra.kind ?? 'user',
    maxDebt: '0.5',
    minBalance: '0',
    policy: 'greedy',
    openedAtMs: 1,
    ...(extra.tenantId ? { tenantId: extra.tenantId } : {}),
  });

describe('WalletOwners', () => {
  const store = new InMemoryEventStore();
  let reads = 0;
  const counting = { read: (stream: string, from?: number) => (reads++, store.read(stream, from)) };

  beforeAll(async () => {
    await store.append('wallet-wa', [opened('wa', { tenantId: 'alice' })], 'no_stream');
    await store.append('wallet-wop', [opened('wop', { kind: 'provider' })], 'no_stream');
  });

  it("learns the owner from the wallet's WalletOpened (none named: the operator's) and its kind", async () => {
    const owners = new WalletOwners(counting);
    expect(await owners.lookup('wa')).toEqual({ walletId: 'wa', owner: 'alice', kind: 'user' });
    expect(await owners.lookup('wop')).toEqual({ walletId: 'wop', owner: 'operator', kind: 'provider' });
  });

  it('reads a wallet once, even for concurrent look-ups, then answers from the cache', async () => {
    const owners = new WalletOwners(counting);
    reads = 0;
    await Promise.all([owners.lookup('wa'), owners.lookup('wa')]);
    await owners.lookup('wa');
    expect(reads).toBe(1);
  });

  it('does not remember an unknown wallet: opened later, it is found', async () => {
    const owners = new WalletOwners(counting);
    expect(await owners.lookup('wb')).toBeUndefined();
    await store.append('wallet-wb', [opened('wb', { tenantId: 'bob' })], 'no_stream');
    expect(await owners.lookup('wb')).toMatchObject({ owner: 'bob' });
  });

  it('needs no read for a wallet it was told about, and stays bounded', async () => {
    const owners = new WalletOwners(counting, 2);
    reads = 0;
    owners.remember(opened('wx', { tenantId: 'carol' }).data);
    expect(await owners.lookup('wx')).toMatchObject({ owner: 'carol' });
    expect(reads).toBe(0);
    await owners.lookup('wa');
    await owners.lookup('wop');
    await owners.lookup('wx'); // evicted by the two reads above: read again (and not found: never appended)
    expect(reads).toBe(3);
  });
});
