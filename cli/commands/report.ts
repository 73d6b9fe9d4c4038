import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { readAllPaged } from '@mesh/eventstore';
import { withStore } from '../connection';
import { UsageError, emit, progress } from '../output';
import { renderReport } from '../report/html';
import { buildReportModel } from '../report/model';

/** Reads the whole log and writes the HTML report; returns the file path. */
export async function writeReport(
  store: Parameters<typeof readAllPaged>[0],
  outDir: string,
  title?: string,
  fromPosition = 1n,
): Promise<{ file: string; events: number }> {
  const events = [];
  for await (const e of readAllPaged(store, fromPosition)) {
    events.push(e);
    if (events.length % 10_000 === 0) progress(`  read ${events.length} events`);
  }
  const model = buildReportModel(events);
  mkdirSync(outDir, { recursive: true });
  const file = join(resolve(outDir), 'index.html');
  writeFileSync(file, renderReport(model, title));
  return { file, events: model.events };
}

export function registerReport(program: Command) {
  program
    .command('report')
    .description('write an HTML page with SVG charts from the event log: CPU per container, wallet balances, tasks')
    .option('--out <dir>', 'folder for index.html', 'reports')
    .option('--from <position>', 'start at this log position (default: the whole log)', '1')
    .action((o: { out: string; from: string }) =>
      withStore(async (store) => {
        if (!/^\d+$/.test(o.from)) throw new UsageError('--from must be a log position (a whole number)');
        progress('reading the event log');
        const result = await writeReport(store, o.out, undefined, BigInt(o.from));
        emit(result, () => console.log(`report written to ${result.file} (${result.events} events)`));
      }),
    );
}
