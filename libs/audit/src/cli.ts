/**
 * `audit verify` from the command line:
 *   NATS_URL=nats://127.0.0.1:4222 npx ts-node -r tsconfig-paths/register libs/audit/src/cli.ts [--json] [--mac-key <file>]
 * Replays the whole log, prints the report and exits 0 when every invariant holds, 1 when one
 * fails, 2 when the audit could not run (bad configuration, NATS unreachable, unreadable key file).
 * The MAC key file is `--mac-key`, else LEDGER_MAC_KEY_FILE, else the default path if it exists;
 * without one `wallet-mac` is skipped (and the report says so).
 */
import { messageOf } from '@mesh/common';
import { commonEnv, loadConfig } from '@mesh/config';
import { createEventStore } from '@mesh/eventstore/factory';
import { connectNats } from '@mesh/runtime/bootstrap';
import type { MacKeyRing } from './mac';
import { DEFAULT_MAC_KEY_FILE, readMacKeyRing } from './mac-key-file';
import { formatAuditReport, verifyAudit } from './verify';

/**
 * The MAC keys for an audit: the file named by `flag` or `LEDGER_MAC_KEY_FILE` must exist; the
 * default file is used only if it exists (undefined then means: skip the MAC check).
 */
export async function macKeysForAudit(
  flag: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
  fallback = DEFAULT_MAC_KEY_FILE,
): Promise<MacKeyRing | undefined> {
  const named = flag ?? env.LEDGER_MAC_KEY_FILE;
  if (named === undefined || named === '') return readMacKeyRing(fallback);
  const ring = await readMacKeyRing(named);
  if (!ring) throw new Error(`MAC key file ${named} (${flag !== undefined ? '--mac-key' : 'LEDGER_MAC_KEY_FILE'}) does not exist`);
  return ring;
}

/** The value after `name` in argv (`--mac-key <file>` or `--mac-key=<file>`). */
function option(argv: string[], name: string): string | undefined {
  const i = argv.indexOf(name);
  if (i >= 0) {
    const value = argv[i + 1];
    if (value === undefined || value.startsWith('--')) throw new Error(`${name} needs a file name`);
    return value;
  }
  return argv.find((a) => a.startsWith(`${name}=`))?.slice(name.length + 1);
}

export async function main(argv: string[] = process.argv.slice(2)): Promise<number> {
  const config = loadConfig(commonEnv);
  const macKeys = await macKeysForAudit(option(argv, '--mac-key'));
  const nc = await connectNats(config.NATS_URL, 'ledger-audit');
  try {
    const store = await createEventStore(config, nc);
    const report = await verifyAudit(store, undefined, { macKeys });
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
