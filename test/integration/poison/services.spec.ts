import { headers as natsHeaders, type NatsConnection } from 'nats';
import {
  balanceRequest,
  deployFunctionRequest,
  depositRequest,
  EVENTS_STREAM,
  functionRequest,
  isEvent,
  MessageQuarantined,
  openWalletRequest,
  pricePlansQuery,
  subjectForStream,
  type RecordedEvent,
} from '@mesh/contracts';
import { verifyAudit } from '@mesh/audit';
import { JetStreamEventStore, readAllPaged } from '@mesh/eventstore';
import { MeshClient, startService, type RunningService } from '@mesh/runtime';
import { eventually, NatsServerProcess } from '@mesh/testing';
import { CreditManagerService } from '../../../apps/credit-manager/src/main';
import { LedgerService } from '../../../apps/ledger/src/main';
import { SchedulerService } from '../../../apps/scheduler/src/main';

/**
 * The services survive poison on the event subjects (real nats-server, services started in this
 * process): garbage, `null`, a forged envelope of an unknown type, and messages without a
 * Mesh-Revision header on a wallet subject. The ledger's full read and projection, the
 * credit-manager's start-up read, the scheduler's view subscription and the audit all carry on;
 * each poison message is recorded once, and the good events after it are processed.
 */
describe('services with poison in the log', () => {
  let server: NatsServerProcess;
  let nc: NatsConnection;
  let raw: JetStreamEventStore;
  let client: MeshClient;
  const running: RunningService[] = [];
  const env = () => ({ NATS_URL: server.url, LEDGER_HTTP_PORT: '0', LOG_LEVEL: 'error' });
  /** A started service, stopped after the tests; its own round trip makes sure its subscriptions are in place. */
  const started = async (starting: Promise<RunningService>) => {
    const service = await starting;
    await service.nc.flush();
    running.push(service);
    return service;
  };
  const publish = async (subject: string, body: string | Uint8Array): Promise<number> =>
    (await nc.jetstream().publish(subject, typeof body === 'string' ? Buffer.from(body) : body)).seq;
  const quarantineRecords = async () => {
    const records = new Map<string, RecordedEvent[]>();
    for await (const e of readAllPaged(raw, 1n, 1000, { quarantine: 'report' })) {
      if (isEvent(e, MessageQuarantined)) records.set(e.data.streamSequence, [...(records.get(e.data.streamSequence) ?? []), e]);
    }
    return records;
  };

  beforeAll(async () => {
    server = await NatsServerProcess.start();
    nc = await server.connect('poison-test');
    raw = await JetStreamEventStore.connect(nc, { warn: () => undefined });
    client = new MeshClient(nc);
  });
  afterAll(async () => {
    for (const service of running.reverse()) await service.stop().catch(() => undefined);
    await nc?.close();
    await server?.dispose();
  });

  it('given poison on several subjects, when the ledger, credit-manager and scheduler start and work, then they carry on, record each poison once and process the good events after it', async () => {
    const ledger = await started(startService(LedgerService, env()));
    await client.request(openWalletRequest, { walletId: 'alice' });
    await client.request(depositRequest, { walletId: 'alice', amount: '5', reference: 'tx-1' });
    const [opened] = await raw.read('wallet-alice');

    // The poison, published past the store by anyone allowed on the subjects.
    const wallet = subjectForStream('wallet-alice');
    const stored = await (await nc.jetstreamManager()).streams.getMessage(EVENTS_STREAM, { seq: Number(opened.position) });
    const body = JSON.parse(Buffer.from(stored.data).toString()) as Record<string, unknown>;
    const { revision: _revision, ...withoutRevision } = body;
    const poison = [
      await publish(wallet, 'garbage'),
      await publish(subjectForStream('task-t-poison'), 'null'),
      await publish(
        subjectForStream('function-f-poison'),
        JSON.stringify({ ...withoutRevision, type: 'NoSuchEvent', stream: 'function-f-poison', revision: 0 }),
      ),
      // No Mesh-Revision header and no revision in the body: never "revision 0".
      await publish(wallet, JSON.stringify(withoutRevision)),
    ];
    // No header, but a copy of WalletOpened claiming revision 0 in its body: a valid event that does not follow its stream.
    const copy = await publish(wallet, stored.data);

    // Restarted, the ledger rebuilds from the whole log; the others read it at start for the first time.
    await ledger.stop();
    running.splice(running.indexOf(ledger), 1);
    await started(startService(LedgerService, env()));
    await started(startService(CreditManagerService, env()));
    await started(startService(SchedulerService, env()));

    // The wallet is neither reset on load (write side) nor in the projection (read side).
    await eventually(async () => (await client.request(balanceRequest, { walletId: 'alice' })).balance === '5', 10_000, 'the rebuilt projection');
    expect(await client.request(depositRequest, { walletId: 'alice', amount: '1', reference: 'tx-2' })).toMatchObject({ balance: '6' });
    expect((await raw.read('wallet-alice')).map((e) => [e.type, e.revision])).toEqual([
      ['WalletOpened', 0],
      ['FundsDeposited', 1],
      ['FundsDeposited', 2],
    ]);
    await eventually(async () => (await client.request(balanceRequest, { walletId: 'alice' })).balance === '6', 10_000, 'the projection to follow');
    expect(await client.request(balanceRequest, { walletId: 'alice' })).toMatchObject({ revision: 2 });

    // Good events after the poison: a function deployed now reaches the scheduler's view and the credit-manager.
    await client.request(deployFunctionRequest, {
      functionId: 'after',
      image: 'mesh/task-base:latest',
      script: 'true',
      cpuInitialMillis: 100,
      memoryBytes: 64 << 20,
    });
    expect(await client.request(functionRequest, { functionId: 'after' })).toMatchObject({ functionId: 'after', version: 1 });
    await eventually(
      async () => (await client.request(pricePlansQuery, {})).functions.some((f) => f.functionId === 'after'),
      10_000,
      'the credit-manager to see the function',
    );

    // Each poison message recorded exactly once, though three services (and the ledger twice) met it.
    // The services record behind their reads: wait until every poison message has its record, then count them.
    await eventually(
      async () => {
        const recorded = await quarantineRecords();
        return [...poison, copy].every((seq) => recorded.has(String(seq)));
      },
      10_000,
      'every poison message to be recorded',
    );
    const records = await quarantineRecords();
    for (const seq of [...poison, copy]) {
      expect(records.get(String(seq))?.map((e) => e.stream)).toEqual([`deadletter-quarantine-${seq}`]);
    }
    const reason = (seq: number) => {
      const record = records.get(String(seq))?.[0];
      return record && isEvent(record, MessageQuarantined) ? record.data.reason : '';
    };
    expect(reason(poison[3])).toMatch(/no valid revision/);
    expect(reason(copy)).toMatch(/revision 0 of wallet-alice does not follow revision 1/);

    // The audit reads the same log, writes nothing, and lists the poison it skipped.
    const head = await raw.headPosition();
    const report = await verifyAudit(raw);
    expect(await raw.headPosition()).toBe(head);
    const valid = report.invariants.find((i) => i.name === 'events-valid');
    expect(valid).toMatchObject({ pass: false, violations: poison.length });
    expect(valid?.examples.join('\n')).toMatch(new RegExp(`poison at position ${poison[0]} on ${wallet.replace(/\./g, '\\.')}: not JSON`));
  });

  it('given a message without a revision header that copies a wallet event, when the wallet is loaded, then the copy does not reset it', async () => {
    await client.request(openWalletRequest, { walletId: 'bob' });
    await client.request(depositRequest, { walletId: 'bob', amount: '3', reference: 'tx-b1' });
    const [openedBob] = await raw.read('wallet-bob');
    const stored = await (await nc.jetstreamManager()).streams.getMessage(EVENTS_STREAM, { seq: Number(openedBob.position) });
    // The same bytes as WalletOpened (so its body says revision 0), published with no headers at all.
    const h = natsHeaders();
    h.set('Nats-Msg-Id', 'not-a-mesh-event');
    await nc.jetstream().publish(subjectForStream('wallet-bob'), stored.data, { headers: h });
    expect(await client.request(depositRequest, { walletId: 'bob', amount: '2', reference: 'tx-b2' })).toMatchObject({ balance: '5' });
    await eventually(async () => (await client.request(balanceRequest, { walletId: 'bob' })).balance === '5', 10_000, 'the projection');
  });
});
