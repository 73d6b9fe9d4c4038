import type { Command } from 'commander';
import { balanceRequest, depositRequest, openWalletRequest, statementRequest, withdrawRequest } from '@mesh/contracts';
import { call, rethrow, withClient } from '../connection';
import { emit, keyValues, table } from '../output';

export function registerWallet(program: Command) {
  const wallet = program.command('wallet').description('open wallets, deposit, withdraw, see balances and statements (ledger)');

  wallet
    .command('open <id>')
    .description('open a user wallet (or a provider wallet with --provider)')
    .option('--max-debt <amount>', 'debt allowed before tasks are aborted, e.g. 0.5', '0.5')
    .option('--min-balance <amount>', 'below this the conservative policy starts no task', '0')
    .option('--policy <policy>', 'greedy (start tasks while balance > 0) or conservative (only above min balance)', 'greedy')
    .option('--provider', 'open a provider wallet (earns from usage) instead of a user wallet')
    .action((id: string, o: { maxDebt: string; minBalance: string; policy: string; provider?: boolean }) =>
      withClient(async (client) => {
        const { json } = await call(client, openWalletRequest, {
          walletId: id,
          kind: o.provider ? 'provider' : 'user',
          maxDebt: o.maxDebt,
          minBalance: o.minBalance,
          policy: o.policy,
        });
        emit(json, () => console.log(`wallet ${id} opened`));
      }),
    );

  wallet
    .command('deposit <id> <amount>')
    .description('credit a wallet; idempotent by --ref (the same ref and amount again is a no-op)')
    .option('--ref <reference>', 'external reference, e.g. a transaction id (default: generated)')
    .action((id: string, amount: string, o: { ref?: string }) =>
      withClient(async (client) => {
        const reference = o.ref ?? `cli-${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`;
        const { data, json } = await call(client, depositRequest, { walletId: id, amount, reference });
        emit(json, () => console.log(`deposited ${amount} into ${id} (ref ${reference}); balance ${data.balance}`));
      }),
    );

  wallet
    .command('withdraw <id> <amount>')
    .description('refund to the user; refused if it would take the wallet below zero')
    .option('--ref <reference>', 'external reference (default: generated)')
    .action((id: string, amount: string, o: { ref?: string }) =>
      withClient(async (client) => {
        const reference = o.ref ?? `cli-${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`;
        const { json } = await call(client, withdrawRequest, { walletId: id, amount, reference });
        emit(json, () => console.log(`withdrew ${amount} from ${id} (ref ${reference})`));
      }),
    );

  wallet
    .command('balance <id>')
    .description('balance, available funds and debt of a wallet')
    .action((id: string) =>
      withClient(async (client) => {
        const { data, json } = await call(client, balanceRequest, { walletId: id });
        emit(json, () => keyValues(data));
      }),
    );

  wallet
    .command('statement <id>')
    .description('every posting with its running balance and cause')
    .option('--limit <n>', 'most recent postings to show', '50')
    .action((id: string, o: { limit: string }) =>
      withClient(async (client) => {
        const result = await client.request(statementRequest, { walletId: id, limit: Number(o.limit) }).catch(rethrow);
        emit(result, () => {
          console.log(`wallet ${result.walletId}: balance ${result.balance} ${result.currency} (${result.total} postings, showing ${result.lines.length})\n`);
          table(
            result.lines.map((l) => ({
              revision: l.revision,
              at: l.occurredAt.replace('T', ' ').slice(0, 23),
              type: l.type,
              amount: l.amount,
              balance: l.balanceAfter,
              cause: l.cause.kind,
              ref: l.cause.chargeId ?? creditedRef(l.cause.charges) ?? l.cause.reference ?? l.cause.reason ?? '',
              task: l.cause.taskId ?? (l.cause.charges?.length === 1 ? l.cause.charges[0].taskId : undefined) ?? '',
            })),
          );
          if (result.truncated) console.log('\n(fewer lines than asked: one answer holds at most 512 KiB; ask for fewer with --limit)');
        });
      }),
    );
}

/** A provider credit names one charge, or several (group-committed): show the one, or how many. */
function creditedRef(charges: Array<{ chargeId: string }> | undefined): string | undefined {
  if (!charges) return undefined;
  return charges.length === 1 ? charges[0].chargeId : `${charges.length} charges (${charges[0].chargeId}, ...)`;
}
