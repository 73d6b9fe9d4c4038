import type { Command } from 'commander';
import { DeliverPolicy } from 'nats';
import { EVENTS_STREAM, CATEGORIES, PLAIN_SUBJECTS, type EventSubjects, type RecordedEvent } from '@mesh/contracts';
import { decodeMessage, detectPartitions, PoisonMessage } from '@mesh/eventstore';
import { withNats } from '../connection';
import { UsageError, isJson } from '../output';

/**
 * `wallet` -> mesh.events.wallet.*, `wallet-alice` -> mesh.events.wallet.alice (each with the
 * partition token of a partitioned log, `layout`), a subject stays as it is.
 */
export function subjectFilter(filter?: string, layout: EventSubjects = PLAIN_SUBJECTS): string | undefined {
  if (!filter || filter === '>' || filter === 'mesh.events.>') return undefined;
  if (filter.startsWith('mesh.events.')) return filter;
  const category = CATEGORIES.find((c) => c === filter);
  if (category) return layout.categoryFilter(category);
  const dash = filter.indexOf('-');
  if (dash > 0 && CATEGORIES.some((c) => c === filter.slice(0, dash))) return layout.streamFilter(filter);
  throw new UsageError(`unknown filter "${filter}": use a category (${CATEGORIES.join(', ')}), a stream (wallet-alice) or a subject (mesh.events.usage.*)`);
}

/** Fields of event data worth a glance, in the order they are shown. */
const DETAIL_KEYS = ['amount', 'balanceAfter', 'to', 'state', 'reason', 'taskId', 'attempt', 'nodeId', 'cpuNanos', 'fromCpuMillis', 'toCpuMillis', 'exitCode'];

/** One line per event: time, position, stream, type and the data's most telling fields (of any event type). */
export function eventLine(e: RecordedEvent): string {
  const data = new Map(typeof e.data === 'object' && e.data !== null ? Object.entries(e.data) : []);
  const detail = DETAIL_KEYS.filter((k) => data.get(k) !== undefined)
    .map((k) => `${k}=${String(data.get(k))}`)
    .join(' ');
  return `${e.occurredAt.slice(11, 23)}  #${e.position}  ${e.stream.padEnd(28)} ${e.type.padEnd(20)} ${detail}`;
}

/** The warning line for a message that is no valid event: where it sits and why it is skipped. */
export function poisonLine(p: PoisonMessage): string {
  return `warning: skipped poison #${p.seq} on ${p.subject}: ${p.reason}`;
}

export function registerEvents(program: Command) {
  const events = program.command('events').description('follow the event log');
  events
    .command('tail [filter]')
    .description('print events live, one line each; filter by category, stream or NATS subject')
    .option('--from-start', 'begin with the first event in the log instead of new ones')
    .option('--limit <n>', 'stop after this many events')
    .action((filter: string | undefined, o: { fromStart?: boolean; limit?: string }) =>
      withNats(async (nc) => {
        const subject = subjectFilter(filter, await detectPartitions(nc));
        const consumer = await nc.jetstream().consumers.get(EVENTS_STREAM, {
          ...(subject ? { filterSubjects: subject } : {}),
          ...(o.fromStart ? { opt_start_seq: 1 } : { deliver_policy: DeliverPolicy.New }),
        });
        const messages = await consumer.consume();
        const limit = o.limit ? Number(o.limit) : Infinity;
        let seen = 0;
        process.once('SIGINT', () => void messages.close());
        for await (const m of messages) {
          const e = decodeMessage(m);
          // The tail only reads: poison is reported on stderr (the services' stores record it) and skipped.
          if (e instanceof PoisonMessage) console.error(poisonLine(e));
          else console.log(isJson() ? JSON.stringify({ ...e, position: e.position.toString() }) : eventLine(e));
          if (++seen >= limit) break;
        }
        await messages.close().catch(() => undefined);
      }),
    );
}
