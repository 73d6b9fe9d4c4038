import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  EVENTS_STREAM,
  auditRequest,
  creditedChargesOf,
  depositRequest,
  isEvent,
  openWalletRequest,
  UsageCredited,
  UsageDebited,
  type RecordedEvent,
} from '@mesh/contracts';
import { JetStreamEventStore } from '@mesh/eventstore';
import { readAllPaged } from '@mesh/eventstore/port';
import { MeshClient } from '@mesh/runtime';
import { NatsServerProcess, ServiceProcess, eventually } from '@mesh/testing';
import type { NatsConnection } from 'nats';

jest.setTimeout(300_000);

const USERS = 8;
const CHARGES_PER_ROUND = 1500;
const ROUNDS_MAX = 3;
/** The ledger is killed once this many debits of the round are in the log and one of them has no credit yet. */
const KILL_AFTER_DEBITS = 200;

/**
 * The ledger as a real process, killed with SIGKILL while charges are being posted, right after
 * debits are seen in the log without their credits. Started again, it finds those debits at start
 * and credits them: every charge ends up paired and the audit (with the MAC check) passes.
 */
describe('ledger killed between a debit and its credit', () => {
  let server: NatsServerProcess;
  let nc: NatsConnection;
  let raw: JetStreamEventStore;
  let client: MeshClient;
  let secrets: string;
  let ledger: ServiceProcess | undefined;

  const startLedger = async () => {
    const started = ServiceProcess.start('ledger', {
      NATS_URL: server.url,
      LEDGER_HTTP_PORT: '0',
      LEDGER_MAC_KEY_FILE: join(secrets, 'ledger-mac.key'),
      LOG_LEVEL: 'log',
    });
    ledger = started;
    await started.healthy(server.url, 120_000);
    return started;
  };
  let chargeSeq = 0;
  const chargeData = (i: number) => ({
    chargeId: `ch-c${i % 20}-${i}`,
    containerId: `c${i % 20}`,
    walletId: `u${i % USERS}`,
    functionId: 'f1',
    nodeId: 'n1',
    taskId: `t${i % 40}`,
    sampleId: `c${i % 20}-${i}`,
    sampleSeq: i + 1,
    windowStartMs: i * 1000,
    windowEndMs: i * 1000 + 1000,
    cpuNanos: 250_000_000,
    memoryByteMs: '1000',
    planId: 'default',
    planVersion: 1,
    currency: 'GRC',
    amount: '0.0001',
    remainder: '0/1',
    providerWalletId: 'provider',
  });
  /** Appends `count` charges as the credit-manager would, 64 at a time. */
  const produce = async (count: number) => {
    const ids = Array.from({ length: count }, () => chargeSeq++);
    for (let i = 0; i < ids.length; i += 64) {
      await Promise.all(
        ids.slice(i, i + 64).map((n) => raw.append(`meter-c${n % 20}`, [{ id: `charged-${n}`, type: 'UsageCharged', data: chargeData(n) }], 'any')),
      );
    }
  };
  /** The debits of the whole log that have no credit, and the counts of each side. */
  const pairing = async () => {
    const debits = new Set<string>();
    const credits = new Set<string>();
    for await (const event of readAllPaged(raw, 1n, 10_000)) observe(event, debits, credits);
    return { unpaired: [...debits].filter((id) => !credits.has(id)), debits: debits.size, credits: credits.size };
  };

  beforeAll(async () => {
    server = await NatsServerProcess.start();
    nc = await server.connect('ledger-crash-test');
    raw = await JetStreamEventStore.connect(nc);
    client = new MeshClient(nc);
    secrets = mkdtempSync(join(tmpdir(), 'mesh-ledger-secrets-'));
  });
  afterAll(async () => {
    await ledger?.stop('SIGKILL');
    await nc?.close();
    await server?.dispose();
    rmSync(secrets, { recursive: true, force: true });
  });

  it('credits at restart every debit left without its credit; every charge is paired and the audit passes', async () => {
    await startLedger();
    for (let u = 0; u < USERS; u++) {
      await client.request(openWalletRequest, { walletId: `u${u}`, maxDebt: '1000' });
      await client.request(depositRequest, { walletId: `u${u}`, amount: '1', reference: `tx-u${u}` });
    }

    // Kill the ledger while debits are in the log without their credits. The window is short (one
    // provider append), so a round whose kill lands after every credit is tried again (bounded).
    let leftUnpaired: string[] = [];
    const producing: Promise<void>[] = [];
    for (let round = 1; round <= ROUNDS_MAX && leftUnpaired.length === 0; round++) {
      const running = ledger!;
      const debits = new Set<string>();
      const credits = new Set<string>();
      let kill: Promise<number | null> | undefined;
      const follow = raw.subscribe({ after: await raw.headPosition(), categories: ['wallet'] }, (event) => {
        observe(event, debits, credits);
        if (!kill && debits.size >= KILL_AFTER_DEBITS && [...debits].some((id) => !credits.has(id))) kill = running.stop('SIGKILL');
      });
      producing.push(produce(CHARGES_PER_ROUND));
      await eventually(() => kill !== undefined, 120_000, `round ${round}: ${KILL_AFTER_DEBITS} debits with one not yet credited`);
      await kill;
      await follow.stop();
      expect(running.child.signalCode).toBe('SIGKILL');
      leftUnpaired = (await pairing()).unpaired;
      if (leftUnpaired.length === 0) await startLedger();
    }
    // The crash did leave the books half-posted (the audit's charges-paired would fail here).
    expect(leftUnpaired.length).toBeGreaterThan(0);

    const restarted = await startLedger();
    // Found by the scan at start (the log was not written to while the ledger was down).
    expect(restarted.logs).toMatch(new RegExp(`${leftUnpaired.length} debit\\(s\\) found without their credit at start`));
    await Promise.all(producing);
    const all = chargeSeq;
    await eventually(
      async () => {
        const p = await pairing();
        return p.debits === all && p.credits === all && p.unpaired.length === 0;
      },
      120_000,
      `all ${all} charges debited and credited`,
    );
    const jsm = await nc.jetstreamManager();
    await eventually(
      async () => {
        const info = await jsm.consumers.info(EVENTS_STREAM, 'ledger_meter');
        return info.num_pending === 0 && info.num_ack_pending === 0;
      },
      60_000,
      'the ledger meter consumer to be idle',
    );
    const report = await client.request(auditRequest, {}, 120_000);
    expect(report.invariants.filter((i) => !i.pass)).toEqual([]);
    expect(report).toMatchObject({ pass: true, charges: all, debits: all, credits: all });
    expect(report.invariants.map((i) => i.name)).toEqual(expect.arrayContaining(['charges-paired', 'wallet-mac']));
  });
});

function observe(event: RecordedEvent, debits: Set<string>, credits: Set<string>): void {
  if (isEvent(event, UsageDebited)) debits.add(event.data.chargeId);
  else if (isEvent(event, UsageCredited)) for (const c of creditedChargesOf(event.data)) credits.add(c.chargeId);
}
