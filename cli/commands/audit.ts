import type { Command } from 'commander';
import { call, withClient } from '../connection';
import { emit } from '../output';

export function registerAudit(program: Command) {
  const audit = program.command('audit').description("verify the books from the event log (the ledger's replay)");
  audit
    .command('verify')
    .description('replay the whole log, re-derive every balance and check the invariants; exit 1 if any fails')
    .action(() =>
      withClient(async (client) => {
        const report = await call(client, 'mesh.query.ledger.audit', {}, 120_000);
        emit(report, () => console.log(typeof report?.text === 'string' ? report.text : JSON.stringify(report, null, 2)));
        if (report && report.passed === false) process.exitCode = 1;
      }),
    );
}
