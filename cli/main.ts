import { Command, CommanderError } from 'commander';
import { messageOf } from '@mesh/common';
import { ContractError } from '@mesh/contracts';
import { registerAudit } from './commands/audit';
import { registerCluster } from './commands/cluster';
import { registerDeadletter } from './commands/deadletter';
import { registerDemo } from './commands/demo';
import { registerEvents } from './commands/events';
import { registerFn } from './commands/fn';
import { registerLedgerToken } from './commands/ledger-token';
import { registerNode } from './commands/node';
import { registerPlan } from './commands/plan';
import { registerReport } from './commands/report';
import { registerStack } from './commands/stack';
import { registerTask } from './commands/task';
import { registerSecurity, registerTenant } from './commands/tenant';
import { setCredsOption } from './connection';
import { registerWallet } from './commands/wallet';
import { CliError, EXIT_FAILED, EXIT_OK, EXIT_USAGE, UsageError, isJson, setJson } from './output';

export function buildProgram(): Command {
  const program = new Command('mesh')
    .description('mesh: serverless tasks in Docker, billed per second from prepaid wallets, every step an event')
    // The runtime (bin/runtime.js): compiled dist/ when fresh, else the sources through ts-node.
    .version(`0.1.0 (${process.env.MESH_RUNTIME === 'compiled' ? 'compiled dist' : 'from source'})`)
    .option('--json', 'print machine-readable JSON on stdout')
    .option('--creds <file>', "NATS credentials to act with (default: MESH_CREDS, else the local stack's operator)")
    .addHelpText(
      'after',
      `
Environment: NATS_URL (default nats://127.0.0.1:4222), MESH_DATA_DIR (default ./.data),
  MESH_CREDS (credentials file; default <data dir>/secrets/nats/operator.json when it exists)
Exit codes: 0 success, 1 the operation failed, 2 usage error.
Start here: mesh up --detach && mesh demo`,
    )
    .hook('preAction', (cmd) => {
      const globals = cmd.optsWithGlobals<{ json?: boolean; creds?: string }>();
      setJson(Boolean(globals.json));
      setCredsOption(globals.creds);
    });
  registerStack(program);
  registerCluster(program);
  registerFn(program);
  registerPlan(program);
  registerWallet(program);
  registerTask(program);
  registerEvents(program);
  registerAudit(program);
  registerReport(program);
  registerDeadletter(program);
  registerNode(program);
  registerDemo(program);
  registerLedgerToken(program);
  registerTenant(program);
  registerSecurity(program);
  // Every command: usage errors exit 2 (not commander's default 1), help on the error.
  const configure = (cmd: Command) => {
    cmd.exitOverride().showHelpAfterError('(run with --help for usage)');
    cmd.commands.forEach(configure);
  };
  configure(program);
  return program;
}

function fail(err: unknown): number {
  if (err instanceof CommanderError) {
    if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') return EXIT_OK;
    return EXIT_USAGE; // commander already printed the message
  }
  const usage = err instanceof UsageError;
  const message = messageOf(err);
  const hint = err instanceof CliError ? err.hint : undefined;
  if (isJson()) process.stdout.write(`${JSON.stringify({ ok: false, error: { message, hint } })}\n`);
  process.stderr.write(`mesh: ${message}\n${hint ? `  ${hint.split('\n').join('\n  ')}\n` : ''}`);
  if (!(err instanceof CliError) && !usage && !(err instanceof ContractError) && process.env.MESH_DEBUG)
    process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
  return usage ? EXIT_USAGE : EXIT_FAILED;
}

export async function main(argv = process.argv): Promise<number> {
  try {
    await buildProgram().parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : EXIT_OK;
  } catch (err) {
    return fail(err);
  }
}

if (require.main === module || /mesh(\.js)?$/.test(process.argv[1] ?? '')) {
  // Commands that keep running (foreground `mesh up`, `events tail`) simply never resolve.
  // Exit only once stdout has drained: a pipe takes 64 KiB at a time, and exiting earlier cuts long
  // --json output short.
  // main() never rejects: it turns every failure into an exit code.
  void main().then((code) => process.stdout.write('', () => process.exit(code)));
}
