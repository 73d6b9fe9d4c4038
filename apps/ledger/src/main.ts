import { runService, type ServiceDefinition } from '@mesh/runtime';
import { LedgerEnv } from './config';
import { LedgerModule } from './ledger.module';

export const LedgerService: ServiceDefinition<typeof LedgerEnv> = {
  service: 'ledger',
  env: LedgerEnv,
  instance: (config) => config.LEDGER_INSTANCE,
  module: (core) => LedgerModule.forRoot(core),
};

if (require.main === module) void runService(LedgerService);
