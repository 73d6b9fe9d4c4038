/**
 * What the trust boundary costs: event appends and request round trips through an auth-enabled
 * nats-server (generated authorization block, nkey identities, per-identity inbox prefixes and
 * subject permissions checked on every publish and subscription) next to an anonymous server, in
 * the same run. Goal: at most 10% slower (>= 90% of the anonymous rate). The two are measured in
 * interleaved rounds and the medians compared: single runs on a shared 2-core machine swing by ±25%.
 */
import type { NatsConnection } from 'nats';
import type { NewEvent } from '@mesh/contracts';
import { JetStreamEventStore } from '@mesh/eventstore';
import { NatsServerProcess } from '@mesh/testing';
import type { BenchResult } from './run';
import { median, perSecond, pool, rateVsRaw } from './support';

const ROUNDS = 4;
const SEQUENTIAL_EVENTS = 2000;
const CONCURRENT_EVENTS = 8000;
const CONCURRENCY = 64;
const REQUESTS = 5000;
const REQUEST_CONCURRENCY = 16;
/** A subject the ledger's identity answers and the operator's may call. */
const REQUEST_SUBJECT = 'mesh.api.ledger.bench-echo';
const ev = (id: string, n: number): NewEvent => ({ id, type: 'BenchEvent', data: { n, note: 'x'.repeat(200) } });

interface Rates {
  sequential: number;
  concurrent: number;
  requests: number;
}

/** `writer` appends (as the ledger: wallet streams), `responder` answers, `requester` calls. */
async function measure(
  log: (line: string) => void,
  label: string,
  round: number,
  writer: NatsConnection,
  responder: NatsConnection,
  requester: NatsConnection,
): Promise<Rates> {
  const store = await JetStreamEventStore.connect(writer);
  log(`${label}: sequential append with expected version x${SEQUENTIAL_EVENTS}`);
  const sequential = await perSecond(() => pool(SEQUENTIAL_EVENTS, 1, (i) => store.append(`wallet-benchseq${round}`, [ev(`s${round}-${i}`, i)], i - 1)));
  log(`${label}: concurrent append x${CONCURRENT_EVENTS} (${CONCURRENCY} streams)`);
  const versions = new Array<number>(CONCURRENCY).fill(-1);
  const concurrent = await perSecond(() =>
    pool(CONCURRENT_EVENTS, CONCURRENCY, async (i) => {
      const w = i % CONCURRENCY;
      const expected = versions[w];
      versions[w] = expected + 1;
      await store.append(`wallet-benchc${round}x${w}`, [ev(`c${round}-${i}`, i)], expected);
    }),
  );
  const sub = responder.subscribe(REQUEST_SUBJECT, { queue: 'mesh-ledger', callback: (_err, msg) => msg.respond(msg.data) });
  await responder.flush();
  log(`${label}: request round trips x${REQUESTS} (${REQUEST_CONCURRENCY} in flight)`);
  const body = new TextEncoder().encode(JSON.stringify({ walletId: 'alice' }));
  const requests = await perSecond(() => pool(REQUESTS, REQUEST_CONCURRENCY, () => requester.request(REQUEST_SUBJECT, body, { timeout: 10_000 })));
  sub.unsubscribe();
  await store.close();
  return { sequential, concurrent, requests };
}

export async function run(log: (line: string) => void): Promise<BenchResult[]> {
  const anonymous = await NatsServerProcess.start();
  const secured = await NatsServerProcess.start({ auth: true });
  const connections: NatsConnection[] = [];
  const open = async (nc: Promise<NatsConnection>) => {
    connections.push(await nc);
    return connections[connections.length - 1];
  };
  try {
    const anon = [
      await open(anonymous.connectAs({ kind: 'anonymous' })),
      await open(anonymous.connectAs({ kind: 'anonymous' })),
      await open(anonymous.connectAs({ kind: 'anonymous' })),
    ] as const;
    const ids = [
      await open(secured.connectAs({ kind: 'service', name: 'ledger' })),
      await open(secured.connectAs({ kind: 'service', name: 'ledger' })),
      await open(secured.connectAs({ kind: 'operator' })),
    ] as const;
    const plainRounds: Rates[] = [];
    const authRounds: Rates[] = [];
    // Which goes first alternates, so warm-up (JIT, page cache) favours neither.
    for (let round = 0; round < ROUNDS; round++) {
      const plainRound = () => measure(log, `anonymous #${round + 1}`, round, ...anon);
      const authRound = () => measure(log, `auth #${round + 1}`, round, ...ids);
      if (round % 2 === 0) {
        plainRounds.push(await plainRound());
        authRounds.push(await authRound());
      } else {
        authRounds.push(await authRound());
        plainRounds.push(await plainRound());
      }
    }
    const med = (rounds: Rates[], key: keyof Rates) => median(rounds.map((r) => r[key]));
    const plain: Rates = { sequential: med(plainRounds, 'sequential'), concurrent: med(plainRounds, 'concurrent'), requests: med(plainRounds, 'requests') };
    const auth: Rates = { sequential: med(authRounds, 'sequential'), concurrent: med(authRounds, 'concurrent'), requests: med(authRounds, 'requests') };
    const violations = secured.logs.split('\n').filter((l) => /Violation/.test(l));
    if (violations.length) throw new Error(`the auth run hit permission violations:\n${violations.join('\n')}`);
    const goal = '>= 90% of anonymous';
    return [
      rateVsRaw(`auth: sequential append, median of ${ROUNDS}`, auth.sequential, 'events/s', { name: 'anonymous', value: plain.sequential }, 0.9, goal),
      rateVsRaw(
        `auth: concurrent append (${CONCURRENCY} streams), median`,
        auth.concurrent,
        'events/s',
        { name: 'anonymous', value: plain.concurrent },
        0.9,
        goal,
      ),
      rateVsRaw(`auth: requests (${REQUEST_CONCURRENCY} in flight), median`, auth.requests, 'req/s', { name: 'anonymous', value: plain.requests }, 0.9, goal),
    ];
  } finally {
    for (const nc of connections) await nc.close().catch(() => undefined);
    await anonymous.dispose();
    await secured.dispose();
  }
}
