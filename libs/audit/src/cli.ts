/**
 * `audit verify` from the command line:
 *   NATS_URL=nats://127.0.0.1:4222 npx ts-node -r tsconfig-paths/register libs/audit/src/cli.ts [--json]
 * Replays the whole log, prints the report and exits 0 when every invariant holds, 1 when one
 * fails, 2 when the audit could not run (bad configuration, NATS unreachable).
 */
import { messageOf } from '@mesh/common';
import { commonEnv, loadConfig } from '@mesh/config';
import { createEventStore } from '@mesh/eventstore/factory';
import { connectNats } from '@mesh/runtime/bootstrap';
import { formatAuditReport, verifyAudit } from './verify';

export async function main(argv: string[] = process.argv.slice(2)): Promise<number> {
  const config = loadConfig(commonEnv);
  const nc = await connectNats(config.NATS_URL, 'ledger-audit');
  try {
    const store = await createEventStore(config, nc);
    const report = await verifyAudit(store);
    process.stdout.write(`${argv.includes('--json') ? JSON.stringify(report, null, 2) : formatAuditReport(report)}\n`);
    await store.close();
    return report.pass ? 0 : 1;
  } finally {
    await nc.drain().catch(() => undefined);
  }
}

if (require.main === module) {
  main().then(
    (code) => process.exit(code),
    (err) => {
      process.stderr.write(`audit: ${messageOf(err)}\n`);
      process.exit(2);
    },
  );
}
