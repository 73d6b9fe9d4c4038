import type { Command } from 'commander';
import { join } from 'node:path';
import { httpTokenFor, readHttpTokenKey } from '@mesh/audit/http-token';
import { OPERATOR_OWNER, tenantIdProblem } from '@mesh/contracts';
import { CliError, UsageError, emit } from '../output';
import { DATA_DIR } from '../stack';

/** The ledger's HTTP token key file as `mesh up` gives it to the ledger: LEDGER_HTTP_TOKEN_KEY_FILE, else <data dir>/secrets/ledger-http-token.key. */
export const ledgerHttpTokenKeyFile = (env: NodeJS.ProcessEnv = process.env) =>
  env.LEDGER_HTTP_TOKEN_KEY_FILE ?? join(DATA_DIR, 'secrets', 'ledger-http-token.key');

/**
 * `mesh ledger token [--tenant <id>]`: prints the bearer token of the ledger's HTTP API for the
 * operator (default) or a tenant, derived from the key file the ledger created (no NATS needed).
 * `curl -H "Authorization: Bearer $(./mesh ledger token)" http://127.0.0.1:8480/totals`.
 */
export function registerLedgerToken(program: Command) {
  const ledger = program.commands.find((c) => c.name() === 'ledger') ?? program.command('ledger').description("the ledger's HTTP API: bearer tokens (token)");
  ledger
    .command('token')
    .description("print a bearer token for the ledger's HTTP API (the operator's, or a tenant's with --tenant)")
    .option('--tenant <tenantId>', "a tenant's token: it reads only that tenant's wallets")
    .option('--key-file <file>', 'the HTTP token key file (default: LEDGER_HTTP_TOKEN_KEY_FILE, else <data dir>/secrets/ledger-http-token.key)')
    .action(async (o: { tenant?: string; keyFile?: string }) => {
      const principal = o.tenant ?? OPERATOR_OWNER;
      const problem = o.tenant === undefined ? undefined : tenantIdProblem(o.tenant);
      if (problem) throw new UsageError(`--tenant ${problem}, got "${o.tenant}"`);
      const file = o.keyFile ?? ledgerHttpTokenKeyFile();
      const key = await readHttpTokenKey(file);
      if (!key)
        throw new CliError(
          `no HTTP token key file at ${file}`,
          'the ledger creates it when it starts with its HTTP server on (mesh up); or give --key-file <file>',
        );
      const token = httpTokenFor(key, principal);
      emit({ principal, token }, () => console.log(token));
    });
}
