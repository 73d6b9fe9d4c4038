import { Inject, Injectable, Logger, Optional } from '@nestjs/common';
import type { JetStreamManager, JsMsg, MsgHdrs, NatsConnection, StoredMsg } from 'nats';
import { EVENTS_STREAM, PLAIN_SUBJECTS, parseStreamName, tenantEventSubject, type EventSubjects, type RecordedEvent } from '@mesh/contracts';
import { messageOf } from '@mesh/common';
import { PoisonMessage, decodeMessage } from '@mesh/eventstore/poison';
import type { EventStore } from '@mesh/eventstore/port';
import { EVENT_STORE, EVENT_SUBJECTS, NATS_CONNECTION } from '@mesh/runtime';
import { tenantOfOwner } from './ownership';
import { TenantOwners } from './tenant-owners';

/** The manager nats.js returns has the direct-get API; its public interface just doesn't list it. */
type DirectManager = JetStreamManager & { direct: { getMessage(stream: string, query: { seq: number; next_by_subj: string }): Promise<StoredMsg> } };

/** The bytes and headers of an event exactly as stored: what the feed republishes. */
interface RawEvent {
  data: Uint8Array;
  headers?: MsgHdrs;
}

/**
 * The tenant feed (docs/ledger.md, "Tenant feed"): every event of a tenant's wallets, functions,
 * tasks, containers and executions is published again, byte for byte with the same headers
 * (Nats-Msg-Id, Mesh-Type, Mesh-Revision, traceparent), on core NATS
 * `mesh.tenant.<tenantId>.events.<category>.<id>`, the only event subjects a tenant may subscribe to.
 * Events of the operator's resources are not republished.
 *
 * At least once: the consumer acks an event after its copy is published, so an event redelivered
 * (a crash between the two, a restart) is published again; subscribers dedupe by event id. The copy
 * is published on the connection the ack then goes out on, so the server has the copy before it
 * sees the ack.
 */
@Injectable()
export class TenantFeed {
  private readonly log = new Logger('TenantFeed');
  readonly owners: TenantOwners;
  private jsm?: Promise<DirectManager>;

  constructor(
    @Inject(NATS_CONNECTION) private readonly nc: NatsConnection,
    @Inject(EVENT_STORE) private readonly store: EventStore,
    @Optional() @Inject(EVENT_SUBJECTS) private readonly subjects: EventSubjects = PLAIN_SUBJECTS,
  ) {
    this.owners = new TenantOwners((stream) => this.firstEvent(stream));
  }

  /**
   * Publishes `event` on its owner's feed when the owner is a tenant. `message` is the JetStream
   * delivery; without one (an operator's replay of a dead letter) the stored message is read by position.
   */
  async republish(event: RecordedEvent, message: JsMsg | undefined): Promise<void> {
    const tenantId = tenantOfOwner(await this.owners.ownerOf(event));
    if (tenantId === undefined) return;
    const raw: RawEvent = message ?? (await this.storedMessage(event.position));
    const { category, id } = parseStreamName(event.stream);
    this.nc.publish(tenantEventSubject(tenantId, category, id), raw.data, raw.headers ? { headers: raw.headers } : {});
  }

  private manager(): Promise<DirectManager> {
    // A failed attempt is not kept: the next event (or its redelivery) asks again.
    this.jsm ??= (this.nc.jetstreamManager() as Promise<DirectManager>).catch((err: unknown) => {
      this.jsm = undefined;
      throw err;
    });
    return this.jsm;
  }

  private async storedMessage(position: bigint): Promise<RawEvent> {
    const stored = await (await this.manager()).streams.getMessage(EVENTS_STREAM, { seq: Number(position) });
    return { data: stored.data, headers: stored.header };
  }

  /**
   * The first event of `stream`: one direct get of the first message on its subject (a wallet's
   * stream may hold many thousands of postings); when that message is not a valid event (poison
   * the store skips), the stream is read through the store, which skips it the same way.
   */
  private async firstEvent(stream: string): Promise<RecordedEvent | undefined> {
    const subject = this.subjects.streamFilter(stream);
    let first: StoredMsg;
    try {
      first = await (await this.manager()).direct.getMessage(EVENTS_STREAM, { seq: 1, next_by_subj: subject });
    } catch (err) {
      if (/not found|no message found|404/i.test(messageOf(err))) return undefined;
      throw err;
    }
    const decoded = decodeMessage({ data: first.data, seq: first.seq, subject: first.subject, headers: first.header }, false);
    if (!(decoded instanceof PoisonMessage)) return decoded;
    this.log.warn(`${stream}: its first message (position ${first.seq}) is not an event (${decoded.reason}); reading the stream`);
    return (await this.store.read(stream))[0];
  }
}
