import { headers as natsHeaders, type MsgHdrs, type NatsConnection } from 'nats';
import { EVENTS_STREAM, isEvent, MessageQuarantined, subjectForStream, TestEvent, type RecordedEvent } from '@mesh/contracts';
import {
  DuplicateEventError,
  EventStoreInvariantError,
  JetStreamEventStore,
  PoisonMessage,
  readAllPaged,
  REVISION_HEADER,
  type EventStore,
} from '@mesh/eventstore';
import { eventually, NatsServerProcess } from '@mesh/testing';

/**
 * Poison on the event subjects against a real nats-server: every reader of the JetStream adapter
 * (read, readAll / readAllPaged, subscribe) skips it, records it once as MessageQuarantined in
 * `deadletter-quarantine-<seq>` (or only reports it), and goes on with the good events after it;
 * gaps are tolerated only where a deleted or quarantined message explains them.
 */
describe('poison messages in the JetStream event store', () => {
  let server: NatsServerProcess;
  const connections: NatsConnection[] = [];
  let store: JetStreamEventStore;
  const warnings: string[] = [];
  let n = 0;

  const open = async (): Promise<JetStreamEventStore> => {
    const nc = await server.connect();
    connections.push(nc);
    return JetStreamEventStore.connect(nc, { warn: (line) => warnings.push(line) });
  };
  const ev = (id: string) => ({ id, type: TestEvent.type, data: { n: ++n } });
  /** A message published past the store, as anyone allowed on the subject could; returns its sequence. */
  const publish = async (subject: string, body: string, headers?: MsgHdrs): Promise<number> => {
    const ack = await store.connection.jetstream().publish(subject, Buffer.from(body), headers ? { headers } : undefined);
    return ack.seq;
  };
  const envelope = (stream: string, id: string, extra: Record<string, unknown> = {}) =>
    JSON.stringify({
      id,
      type: TestEvent.type,
      stream,
      occurredAt: new Date().toISOString(),
      schemaVersion: 1,
      correlationId: id,
      causationId: id,
      data: { n: 1 },
      ...extra,
    });
  const revisionHeader = (revision: number) => {
    const h = natsHeaders();
    h.set(REVISION_HEADER, String(revision));
    return h;
  };
  /** Every quarantine record in the log, by the sequence it names. */
  const quarantineRecords = async (reader: EventStore) => {
    const records = new Map<string, RecordedEvent[]>();
    for await (const e of readAllPaged(reader, 1n, 1000, { quarantine: 'report' })) {
      if (!isEvent(e, MessageQuarantined)) continue;
      records.set(e.data.streamSequence, [...(records.get(e.data.streamSequence) ?? []), e]);
    }
    return records;
  };

  beforeAll(async () => {
    server = await NatsServerProcess.start();
    store = await open();
  });
  afterAll(async () => {
    for (const nc of connections) await nc.close().catch(() => undefined);
    await server.dispose();
  });

  it('given garbage, null, a forged type, a stream mismatch, bad data and a bad subject, when the log is read by two stores, then each poison is skipped, recorded once, and the good events after it are read', async () => {
    const stream = `test-p${++n}`;
    const subject = subjectForStream(stream);
    await store.append(stream, [ev('good-1')], 'no_stream');
    const poison = new Map<number, RegExp>([
      [await publish(subject, 'garbage'), /not JSON/],
      [await publish(subject, 'null'), /not an envelope: the body is null/],
      [await publish(subject, '[1,2]'), /the body is an array/],
      [await publish(subject, envelope(stream, 'forged-type', { type: 'NoSuchEvent', revision: 1 })), /NoSuchEvent is not a known event type/],
      [await publish(subject, envelope(stream, 'wrong-category', { type: 'WalletOpened', revision: 1 })), /WalletOpened belongs to category wallet, not test/],
      [await publish(subject, envelope('test-other', 'mismatch', { revision: 1 })), /stream test-other in the body is not the subject's stream/],
      [await publish(subject, envelope(stream, 'bad-data', { data: { n: 'one' }, revision: 1 })), /TestEvent data breaks its schema: n:/],
      [await publish(subject, envelope(stream, 'no-revision')), /no valid revision/],
      [await publish(subject, envelope(stream, 'bad-header'), revisionHeader(-1)), /no valid revision/],
      [await publish('mesh.events.x', 'garbage'), /is not mesh\.events\.<category>\.<id>/],
      [await publish('mesh.events.nosuch.x', envelope('nosuch-x', 'unknown-category')), /nosuch is not a known category/],
      [await publish('mesh.events.test.a.b', envelope('test-a', 'deep')), /is not mesh\.events\.<category>\.<id>/],
    ]);
    await store.append(stream, [ev('good-2')], 0);

    const reported: PoisonMessage[] = [];
    const other = await open();
    const [first, second] = await Promise.all([
      (async () => {
        const seen: RecordedEvent[] = [];
        for await (const e of readAllPaged(store, 1n, 3, { onPoison: (p) => reported.push(p) })) seen.push(e);
        return seen;
      })(),
      (async () => {
        const seen: RecordedEvent[] = [];
        for await (const e of readAllPaged(other, 1n, 1000)) seen.push(e);
        return seen;
      })(),
    ]);
    const goodIds = (events: RecordedEvent[]) => events.filter((e) => e.stream === stream).map((e) => e.id);
    expect(goodIds(first)).toEqual(['good-1', 'good-2']);
    expect(goodIds(second)).toEqual(['good-1', 'good-2']);
    expect(new Map(reported.map((p) => [p.seq, p.reason]))).toEqual(new Map([...poison].map(([seq, reason]) => [seq, expect.stringMatching(reason)])));
    // The stream read sees the same: the good events at revisions 0 and 1, and the next append follows them.
    expect((await other.read(stream)).map((e) => [e.id, e.revision])).toEqual([
      ['good-1', 0],
      ['good-2', 1],
    ]);
    await expect(other.append(stream, [ev('good-3')], 1)).resolves.toMatchObject({ nextExpectedVersion: 2 });

    // Recording runs behind the reads; both readers queued every poison message.
    await Promise.all([store.flushQuarantine(), other.flushQuarantine()]);
    const records = await quarantineRecords(store);
    for (const [seq, reason] of poison) {
      expect(records.get(String(seq))).toEqual([expect.objectContaining({ stream: `deadletter-quarantine-${seq}`, id: `quarantine-${seq}` })]);
      const record = records.get(String(seq))?.[0];
      expect(record && isEvent(record, MessageQuarantined) ? record.data.streamSequence : '').toBe(String(seq));
      expect(record && isEvent(record, MessageQuarantined) ? record.data.reason : '').toMatch(reason);
    }
    expect(warnings.some((w) => /quarantined poison at position \d+/.test(w))).toBe(true);
  });

  it('given a stream whose last message has no revision header, when it is loaded and appended to, then it is not read as a reset stream', async () => {
    const stream = `test-h${++n}`;
    const subject = subjectForStream(stream);
    await store.append(stream, [ev('h-0'), ev('h-1'), ev('h-2')], 'no_stream');
    // No Mesh-Revision header: a copy of an event without its revision, and a copy that claims revision 0.
    await publish(subject, envelope(stream, 'h-copy'));
    await publish(subject, envelope(stream, 'h-claims-0', { revision: 0 }));
    const fresh = await open(); // no cached tail: the tail must come from the log
    expect((await fresh.read(stream)).map((e) => e.revision)).toEqual([0, 1, 2]);
    await expect(fresh.append(stream, [ev('h-3')], 0)).rejects.toMatchObject({ actual: 2 });
    const another = await open();
    await expect(another.append(stream, [ev('h-3')], 2)).resolves.toMatchObject({ nextExpectedVersion: 3 });
    expect((await fresh.read(stream)).map((e) => [e.id, e.revision])).toEqual([
      ['h-0', 0],
      ['h-1', 1],
      ['h-2', 2],
      ['h-3', 3],
    ]);
  });

  it('given poison published with the Nats-Msg-Id of an event not yet appended, when that event is appended, then it is refused as a duplicate, never taken for revision 0', async () => {
    const stream = `test-i${++n}`;
    const h = natsHeaders();
    h.set('Nats-Msg-Id', `squatted-${n}`);
    await publish(subjectForStream(stream), 'garbage', h);
    const appending = store.append(stream, [{ id: `squatted-${n}`, type: TestEvent.type, data: { n } }], 'no_stream');
    await expect(appending).rejects.toBeInstanceOf(DuplicateEventError);
    await expect(appending).rejects.toThrow(/the id is taken at position \d+ by a message that is not this event/);
    expect(await store.read(stream)).toEqual([]);
  });

  it('given poison on a subscribed category, when a subscription passes it, then the handler gets the good events after it and its position moves past the poison', async () => {
    const stream = `test-s${++n}`;
    const start = await store.headPosition();
    const got: string[] = [];
    const reported: number[] = [];
    const sub = store.subscribe({ after: start, categories: ['test', 'wallet'], onPoison: (p) => reported.push(p.seq) }, (e) => {
      if (e.stream === stream) got.push(e.id);
    });
    try {
      await store.append(stream, [ev('s-1')], 'no_stream');
      const bad = await publish(subjectForStream(stream), 'null');
      await store.append(stream, [ev('s-2')], 0);
      await eventually(async () => got.length === 2, 10_000, 'the subscription to pass the poison');
      expect(got).toEqual(['s-1', 's-2']);
      expect(reported).toEqual([bad]);
      expect(sub.position).toBeGreaterThan(BigInt(bad));
      await store.flushQuarantine();
      expect((await quarantineRecords(store)).get(String(bad))).toHaveLength(1);
    } finally {
      await sub.stop();
    }
  });

  it('given a reader that must not write, when it meets poison, then it reports it and writes no record', async () => {
    const bad = await publish(subjectForStream(`test-r${++n}`), 'garbage');
    const head = await store.headPosition();
    const reported: number[] = [];
    const reader = await open();
    for await (const _e of readAllPaged(reader, 1n, 1000, { quarantine: 'report', onPoison: (p) => reported.push(p.seq) })) {
      // only the poison reports matter here
    }
    expect(reported).toContain(bad);
    expect(await store.headPosition()).toBe(head);
    expect(await store.read(`deadletter-quarantine-${bad}`)).toEqual([]);
  });

  it('given deleted messages, when the log and a stream are read, then the gaps they leave are tolerated; an unexplained gap is still an error', async () => {
    const stream = `test-d${++n}`;
    await store.append(stream, [ev('d-0'), ev('d-1'), ev('d-2'), ev('d-3')], 'no_stream');
    const events = await store.read(stream);
    const jsm = await store.connection.jetstreamManager();
    await jsm.streams.deleteMessage(EVENTS_STREAM, Number(events[1].position));
    await jsm.streams.deleteMessage(EVENTS_STREAM, Number(events[2].position), false);
    expect((await store.read(stream)).map((e) => e.id)).toEqual(['d-0', 'd-3']);
    const all: RecordedEvent[] = [];
    for await (const e of readAllPaged(store, 1n, 2)) all.push(e);
    expect(all.filter((e) => e.stream === stream).map((e) => e.id)).toEqual(['d-0', 'd-3']);
    expect(new Set(all.map((e) => e.position)).size).toBe(all.length);
    // The next append follows the last revision, not the count.
    const fresh = await open();
    const appended = await fresh.append(stream, [ev('d-4')], 3);
    expect(appended).toMatchObject({ nextExpectedVersion: 4 });

    // The last message of the log deleted: the head is the last message left, so a reader waiting for it gets there.
    const before = await fresh.append(stream, [ev('d-5')], 4);
    const last = await fresh.append(stream, [ev('d-6')], 5);
    await jsm.streams.deleteMessage(EVENTS_STREAM, Number(last.position));
    expect(await store.headPosition()).toBe(before.position);
    const sub = store.subscribe({ after: 0n }, () => undefined);
    try {
      await eventually(async () => sub.position >= (await store.headPosition()), 10_000, 'the subscription to reach the head');
    } finally {
      await sub.stop();
    }
    expect((await store.read(stream)).map((e) => e.id)).toEqual(['d-0', 'd-3', 'd-4', 'd-5']);

    // A message that skips revisions with nothing deleted or quarantined between: still an error.
    const gap = `test-g${++n}`;
    await store.append(gap, [ev('g-0')], 'no_stream');
    await publish(subjectForStream(gap), envelope(gap, 'g-5', { revision: 5 }), revisionHeader(5));
    const outcome = store.read(gap);
    await expect(outcome).rejects.toBeInstanceOf(EventStoreInvariantError);
    await expect(outcome).rejects.toMatchObject({ stream: gap, revision: 1 });
  });
});
