import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * The ledger's keyed MAC of wallet events (docs/ledger.md, "Event MAC"). The hash chain proves that
 * the events of a wallet follow each other, but anyone who can publish on `mesh.events.wallet.<x>`
 * can compute a correct chain too; the MAC can only be computed with the ledger's secret key, so a
 * forged event is told apart from one the ledger wrote.
 *
 * `mac` = HMAC-SHA-256 hex, keyed with the secret of `macKeyId`, over the same canonical body as the
 * hash (`walletEventBody`: type, data without its seal members, prevHash). Pure: no I/O here (the
 * key file is read in mac-key-file.ts).
 */

/** One key of the ring. `fromPosition` is the log's head position when the key was created. */
export interface MacKey {
  id: string;
  secret: Buffer;
  createdAtMs: number;
  fromPosition: bigint;
}

/** The smallest secret accepted (bytes): HMAC-SHA-256 keys shorter than the hash weaken it. */
export const MAC_SECRET_MIN_BYTES = 32;
export const MAC_KEY_ID = /^[A-Za-z0-9_-]{1,64}$/;

/**
 * The keys the ledger signs and verifies with: one active key (every new event is MAC'd with it) and
 * older keys kept to verify the events they MAC'd.
 */
export class MacKeyRing {
  private readonly keys = new Map<string, MacKey>();
  /** Wallet events written at a log position after this one must carry a MAC (see walletMacProblem). */
  readonly macRequiredAfter: bigint;

  constructor(
    keys: MacKey[],
    readonly activeKeyId: string,
  ) {
    if (keys.length === 0) throw new Error('MAC key ring: keys must hold at least one key');
    for (const key of keys) {
      if (!MAC_KEY_ID.test(key.id)) throw new Error(`MAC key ring: key id ${JSON.stringify(key.id)} must match ${MAC_KEY_ID.source}`);
      if (key.secret.length < MAC_SECRET_MIN_BYTES) throw new Error(`MAC key ring: key ${key.id}: secret must be at least ${MAC_SECRET_MIN_BYTES} bytes`);
      if (this.keys.has(key.id)) throw new Error(`MAC key ring: key id ${key.id} is listed twice`);
      this.keys.set(key.id, key);
    }
    if (!this.keys.has(activeKeyId)) throw new Error(`MAC key ring: activeKeyId ${activeKeyId} is not one of the keys`);
    // The first key's creation is when MACs began: only events older than that may lack one.
    this.macRequiredAfter = keys.reduce((min, k) => (k.fromPosition < min ? k.fromPosition : min), keys[0].fromPosition);
  }

  static generate(fromPosition: bigint, nowMs = Date.now()): MacKeyRing {
    const id = `k${new Date(nowMs).toISOString().slice(0, 10).replaceAll('-', '')}-${randomBytes(4).toString('hex')}`;
    return new MacKeyRing([{ id, secret: randomBytes(MAC_SECRET_MIN_BYTES), createdAtMs: nowMs, fromPosition }], id);
  }

  get active(): MacKey {
    return this.keys.get(this.activeKeyId)!;
  }

  key(id: string): MacKey | undefined {
    return this.keys.get(id);
  }

  list(): MacKey[] {
    return [...this.keys.values()];
  }

  /** The seal members to add to a wallet event's data, for its canonical body. */
  sign(body: string): { mac: string; macKeyId: string } {
    return { mac: hmacHex(this.active.secret, body), macKeyId: this.activeKeyId };
  }

  /** Whether `mac` is the MAC of `body` under key `macKeyId` (constant time); undefined when the key is unknown. */
  verify(body: string, mac: string, macKeyId: string): boolean | undefined {
    const key = this.keys.get(macKeyId);
    if (!key) return undefined;
    const expected = createHmac('sha256', key.secret).update(body).digest();
    const given = Buffer.from(mac, 'hex');
    return given.length === expected.length && timingSafeEqual(given, expected);
  }

  /** Never print secrets: a ring logged by mistake shows its key ids only. */
  toJSON(): unknown {
    return { activeKeyId: this.activeKeyId, keys: this.list().map((k) => k.id) };
  }
}

function hmacHex(secret: Buffer, body: string): string {
  return createHmac('sha256', secret).update(body).digest('hex');
}

/** What a reader carries along one wallet stream to apply the MAC rule. */
export interface MacTrail {
  /** An earlier event of this stream carried a MAC. */
  macSeen: boolean;
}

/**
 * What is wrong with the MAC of one wallet event (stored in log order), or undefined when it is
 * acceptable. The rule, which a forger cannot meet without the key:
 * - an event that carries `mac` must carry `macKeyId` of a known key and the right MAC;
 * - an event without a MAC is accepted only when it is older than MACs: written at a log position
 *   not after the first key's `fromPosition` (the head of the log when that key was created; the
 *   position is given by the server, not by the writer), and no earlier event of its stream carried
 *   a MAC. Everything written since the key exists must carry one.
 */
export function walletMacProblem(ring: MacKeyRing, trail: MacTrail, body: string, data: Record<string, unknown>, position: bigint): string | undefined {
  const { mac, macKeyId } = data;
  if (mac === undefined && macKeyId === undefined) {
    if (trail.macSeen) return 'carries no MAC, but an earlier event of its stream does (every later event must)';
    if (position > ring.macRequiredAfter)
      return `carries no MAC, and was written at position ${position}, after MACs began (position ${ring.macRequiredAfter})`;
    return undefined;
  }
  trail.macSeen = true;
  if (typeof mac !== 'string' || !/^[0-9a-f]{64}$/.test(mac)) return 'mac must be 64 lowercase hex digits';
  if (typeof macKeyId !== 'string') return 'macKeyId must be a string next to mac';
  const ok = ring.verify(body, mac, macKeyId);
  if (ok === undefined) return `MAC key ${JSON.stringify(macKeyId.slice(0, 64))} is not in the key file`;
  return ok ? undefined : `MAC does not match its content (key ${macKeyId})`;
}
