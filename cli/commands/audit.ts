import type { Command } from 'commander';
import { RequestError } from '@mesh/runtime';
import { auditRequest } from '@mesh/contracts';
import { formatAuditReport, verifyAudit, type AuditReport } from '@mesh/audit';
import { withClient } from '../connection';
import { emit, progress } from '../output';

export function registerAudit(program: Command) {
  const audit = program.command('audit').description("verify the books from the event log (the ledger's replay)");
  audit
    .command('verify')
    .description('replay the whole log, re-derive every balance and check the invariants; exit 1 if any fails')
    .addHelpText('after', '\nAsks the running ledger (which also compares its projection); without one, replays the log here.')
    .action(() =>
      withClient(async (client, nc) => {
        let report: AuditReport;
        try {
          report = await client.request(auditRequest, {}, 300_000);
        } catch (err) {
          if (!(err instanceof RequestError) || err.code !== 'no_responders') throw err;
          progress('the ledger is not running: replaying the log here (without the projection comparison)');
          const { JetStreamEventStore } = await import('@mesh/eventstore');
          report = await verifyAudit(await JetStreamEventStore.connect(nc));
        }
        emit(report, () => console.log(formatAuditReport(report)));
        if (!report.pass) process.exitCode = 1;
      }),
    );
}
