/**
 * What a JetStream leader change costs a writer: a 3-server cluster, MESH_EVENTS with 3 replicas,
 * one appender (the event store, one event every 10 ms, a failed append retried with the same id)
 * while the stream leader is SIGKILLed. Reported per round: the longest gap between two
 * acknowledged appends (the pause the leader change causes) and the appends that failed and were
 * retried. The killed server is started again and caught up before the next round.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { EVENTS_STREAM } from '@mesh/contracts';
import { JetStreamEventStore } from '@mesh/eventstore';
import { eventually, NatsClusterProcess } from '@mesh/testing';
import { AppendProbe } from '../test/cluster/probe';
import type { BenchResult } from './run';
import { median } from './support';

const ROUNDS = 3;
/** Acknowledged appends before the kill (steady state) and after it (the new leader serves). */
const ACKS_BEFORE_KILL = 200;
const ACKS_AFTER_KILL = 200;
const CATCH_UP_TIMEOUT_MS = 60_000;

/** Polls `done` (bounded); the timeout names what was awaited as it stands then. */
async function waitFor(done: () => boolean, timeoutMs: number, what: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what()}`);
    await sleep(50);
  }
}

export async function run(log: (line: string) => void): Promise<BenchResult[]> {
  const cluster = await NatsClusterProcess.start({ size: 3 });
  const gaps: number[] = [];
  const errors: number[] = [];
  try {
    for (let round = 1; round <= ROUNDS; round++) {
      // A fresh writer per round: see docs/cluster.md ("a first append after a server rejoined").
      const nc = await cluster.connect(`bench-cluster-${round}`);
      const store = await JetStreamEventStore.connect(nc, { replicas: 3 });
      const probe = new AppendProbe(store, `test-pause${round}`).start();
      await waitFor(
        () => probe.ackedCount >= ACKS_BEFORE_KILL,
        60_000,
        () => `steady appends: ${probe.progress}`,
      );
      const leader = await cluster.streamLeader();
      const killed = cluster.indexOf(leader);
      const killedAtMs = Date.now();
      await cluster.kill(killed, 'SIGKILL');
      const ackedAtKill = probe.ackedCount;
      await waitFor(
        () => probe.ackedCount >= ackedAtKill + ACKS_AFTER_KILL,
        120_000,
        () => `appends after the leader change: ${probe.progress}`,
      );
      const report = await probe.stop();
      const newLeader = await cluster.streamLeader();
      log(
        `round ${round}: killed ${leader}, new leader ${newLeader}; longest gap ${report.longestGapMs} ms (ended ${report.longestGapEndedAtMs - killedAtMs} ms after the kill), ${report.errors} failed appends retried: ${report.errorExamples.slice(0, 2).join(' | ')}`,
      );
      gaps.push(report.longestGapMs);
      errors.push(report.errors);
      await cluster.restart(killed);
      await eventually(
        async () => {
          const info = await (await nc.jetstreamManager()).streams.info(EVENTS_STREAM);
          const local = await cluster.localStreamState(killed);
          return local?.lastSeq === info.state.last_seq && (info.cluster?.replicas ?? []).every((r) => r.current);
        },
        CATCH_UP_TIMEOUT_MS,
        `${leader} caught up`,
      );
      log(`round ${round}: ${leader} restarted and caught up`);
      await nc.close();
      await sleep(500);
    }
  } finally {
    await cluster.dispose();
  }
  return [
    { name: 'cluster: append pause at a leader SIGKILL (median)', value: median(gaps), unit: 'ms' },
    { name: 'cluster: append pause at a leader SIGKILL (max)', value: Math.max(...gaps), unit: 'ms' },
    { name: 'cluster: failed appends retried per leader change (median)', value: median(errors), unit: 'appends' },
  ];
}
