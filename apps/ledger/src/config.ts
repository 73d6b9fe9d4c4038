import { env } from '@mesh/config';

/** Variables of the ledger service (in addition to the common ones in libs/config). */
export const LedgerEnv = {
  LEDGER_INSTANCE: env.id('Instance name of this ledger (for logs and health)', 'ledger'),
};
