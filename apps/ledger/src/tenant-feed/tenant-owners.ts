import { LRUCache } from '@mesh/common';
import { parseStreamName, streamName, type RecordedEvent } from '@mesh/contracts';
import { ownerOfFirstEvent, ownerRefOf } from './ownership';

/** Owners remembered per kind (wallets, tasks): an owner never changes, so an evicted one is read again from its stream's first event. */
export const TENANT_FEED_OWNERS_MAX = 100_000;

/** Reads the first event of a stream (undefined when the stream has none). */
export type FirstEventReader = (stream: string) => Promise<Pick<RecordedEvent, 'type' | 'data'> | undefined>;

/**
 * The owner (tenant id or OPERATOR_OWNER) of each event the feed sees. Owners of wallets and tasks
 * are learned from their creating events as they pass and kept in bounded LRU maps; a miss (evicted,
 * not seen since this process started, or created in a category whose consumer is behind) reads the
 * stream's first event. An owner found nowhere (no such wallet or task) is not remembered, so a
 * stream created later is still found. Every owner is written once (at creation) and never changes,
 * so a remembered owner never goes stale.
 */
export class TenantOwners {
  private readonly owners: Record<'wallet' | 'task', LRUCache<string, string>>;

  constructor(
    private readonly readFirst: FirstEventReader,
    maxPerKind = TENANT_FEED_OWNERS_MAX,
  ) {
    this.owners = { wallet: new LRUCache({ max: maxPerKind }), task: new LRUCache({ max: maxPerKind }) };
  }

  /** The owner of `event`'s resource, or undefined for events of no one (nodes, price plans) and of unknown wallets or tasks. */
  async ownerOf(event: Pick<RecordedEvent, 'type' | 'stream' | 'data'>): Promise<string | undefined> {
    const ref = ownerRefOf(event);
    switch (ref.kind) {
      case 'none':
        return undefined;
      case 'owner': {
        const { category, id } = parseStreamName(event.stream);
        if (category === 'wallet' || category === 'task') this.owners[category].set(id, ref.owner);
        return ref.owner;
      }
      default:
        return this.lookup(ref.kind, ref.id);
    }
  }

  private async lookup(kind: 'wallet' | 'task', id: string): Promise<string | undefined> {
    const cached = this.owners[kind].get(id);
    if (cached !== undefined) return cached;
    const first = await this.readFirst(streamName(kind, id));
    const owner = first === undefined ? undefined : ownerOfFirstEvent(kind, first);
    if (owner !== undefined) this.owners[kind].set(id, owner);
    return owner;
  }
}
