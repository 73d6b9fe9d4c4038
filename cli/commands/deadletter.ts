import type { Command } from 'commander';
import { SERVICES, deadLetterReplayRequest, deadLetterReplaySubject, type DeadLetterReplayReply, type ServiceName } from '@mesh/contracts';
import { JetStreamEventStore } from '@mesh/eventstore';
import type { EventStore } from '@mesh/eventstore/port';
import { deadLetterStream, foldDeadLetters, type DeadLetter } from '@mesh/runtime';
import { call, withClient, withStore } from '../connection';
import { CliError, UsageError, emit, progress, table } from '../output';

/** A replay runs the handler once more: allow it the time of a slow handler, not of a hung one. */
const REPLAY_TIMEOUT_MS = 60_000;
/** `--all` replays at most this many letters per run (run it again for more). */
const REPLAY_ALL_MAX = 10_000;

function servicesOf(service: string | undefined): ServiceName[] {
  if (service === undefined) return [...SERVICES];
  const known = SERVICES.find((s) => s === service);
  if (!known) throw new UsageError(`--service: unknown service "${service}": use one of ${SERVICES.join(', ')}`);
  return [known];
}

/** The letters still parked (not resolved by a replay) of the given services, oldest first. */
export async function parkedLetters(store: EventStore, services: ServiceName[]): Promise<DeadLetter[]> {
  const parked: DeadLetter[] = [];
  for (const service of services) {
    const { letters } = foldDeadLetters(await store.read(deadLetterStream(service)));
    for (const letter of letters.values()) if (letter.status === 'parked') parked.push(letter);
  }
  return parked;
}

const firstLine = (text: string | undefined) => text?.split('\n')[0] ?? '';

export function registerDeadletter(program: Command) {
  const deadletter = program
    .command('deadletter')
    .description('messages a service could not handle within its retry window, parked in deadletter-<service>: list and replay them');

  deadletter
    .command('list')
    .description('list parked messages with their error (replayed ones are not listed)')
    .option('--service <name>', `only this service (${SERVICES.join(', ')})`)
    .action((o: { service?: string }) =>
      withStore(async (store) => {
        const letters = await parkedLetters(store, servicesOf(o.service));
        emit({ deadLetters: letters }, () =>
          table(
            letters.map((l) => ({
              id: l.id,
              service: l.service,
              event: `${l.eventType ?? '?'} ${l.eventId ?? ''}`.trim(),
              seq: l.streamSequence,
              deliveries: l.deliveries,
              parkedAt: l.parkedAt,
              replays: l.replays,
              error: firstLine(l.lastReplayError ?? l.error),
            })),
            ['id', 'service', 'event', 'seq', 'deliveries', 'parkedAt', 'replays', 'error'],
          ),
        );
      }),
    );

  deadletter
    .command('replay [id]')
    .description('re-deliver parked messages: the owning service runs its handler on the original event again (a replayed letter is resolved)')
    .option('--all', 'every parked message (of --service, or of all services)')
    .option('--service <name>', `only this service (${SERVICES.join(', ')})`)
    .action((id: string | undefined, o: { all?: boolean; service?: string }) => {
      if ((id === undefined) === !o.all) throw new UsageError('give either a dead letter id or --all');
      const services = servicesOf(o.service);
      return withClient(async (client, nc) => {
        const store = await JetStreamEventStore.connect(nc);
        const parked = await parkedLetters(store, services);
        const chosen = id === undefined ? parked.slice(0, REPLAY_ALL_MAX) : parked.filter((l) => l.id === id);
        if (id !== undefined && chosen.length === 0) {
          // Not parked: already resolved (a second replay is a no-op), or no such letter at all.
          const folded = await Promise.all(services.map(async (s) => foldDeadLetters(await store.read(deadLetterStream(s))).letters.get(id)));
          const resolved = folded.find((l) => l !== undefined);
          if (!resolved) throw new CliError(`no dead letter ${id}`, 'list them with `mesh deadletter list`');
          const reply: DeadLetterReplayReply = { id: resolved.id, outcome: 'already-resolved' };
          emit({ replayed: [reply] }, () => console.log(`${resolved.id}: already resolved (replayed before); nothing to do`));
          return;
        }
        const replies: DeadLetterReplayReply[] = [];
        for (const letter of chosen) {
          const service = servicesOf(letter.service)[0];
          const subject = deadLetterReplaySubject(service, letter.consumer);
          progress(`replaying ${letter.id} (${letter.eventType ?? '?'} ${letter.eventId ?? ''}) on ${service}`);
          const { data: reply } = await call(client, { ...deadLetterReplayRequest(service), subject }, { id: letter.id }, REPLAY_TIMEOUT_MS);
          replies.push(reply);
        }
        const failed = replies.filter((r) => r.outcome === 'failed');
        emit({ replayed: replies }, () => {
          for (const r of replies) console.log(`${r.id}: ${r.outcome}${r.error ? ` (${firstLine(r.error)})` : ''}`);
          if (replies.length === 0) console.log('no parked messages');
        });
        if (parked.length > chosen.length) progress(`${parked.length - chosen.length} more parked: run it again`);
        if (failed.length > 0) throw new CliError(`${failed.length} of ${replies.length} replays failed again; they stay parked`, 'see `mesh deadletter list`');
      });
    });
}
