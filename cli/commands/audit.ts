import type { Command } from 'commander';
import { RequestError } from '@mesh/runtime';
import { auditRequest } from '@mesh/contracts';
import { join } from 'node:path';
import { formatAuditReport, verifyAudit, type AuditReport } from '@mesh/audit';
import { macKeysForAudit } from '@mesh/audit/cli';
import { withClient } from '../connection';
import { emit, progress } from '../output';
import { DATA_DIR } from '../stack';

export function registerAudit(program: Command) {
  const audit = program.command('audit').description("verify the books from the event log (the ledger's replay)");
  audit
    .command('verify')
    .description('replay the whole log, re-derive every balance and check the invariants; exit 1 if any fails')
    .option(
      '--mac-key <file>',
      'MAC key file of the ledger, for a replay here (default: LEDGER_MAC_KEY_FILE, else <data dir>/secrets/ledger-mac.key if it exists)',
    )
    .addHelpText(
      'after',
      '\nAsks the running ledger (which also compares its projection and checks the MACs with its own key); without one, replays the log here.',
    )
    .action((options: { macKey?: string }) =>
      withClient(async (client, nc) => {
        let report: AuditReport;
        try {
          report = await client.request(auditRequest, {}, 300_000);
        } catch (err) {
          if (!(err instanceof RequestError) || err.code !== 'no_responders') throw err;
          progress('the ledger is not running: replaying the log here (without the projection comparison)');
          const macKeys = await macKeysForAudit(options.macKey, process.env, join(DATA_DIR, 'secrets', 'ledger-mac.key'));
          if (!macKeys) progress('no MAC key file: the wallet-mac check is skipped (give --mac-key <file>)');
          const { JetStreamEventStore } = await import('@mesh/eventstore');
          report = await verifyAudit(await JetStreamEventStore.connect(nc), undefined, { macKeys });
        }
        emit(report, () => console.log(formatAuditReport(report)));
        if (!report.pass) process.exitCode = 1;
      }),
    );
}
