import { runService, type ServiceDefinition } from '@mesh/runtime';
import { LedgerEnv } from './config';
import { LedgerModule } from './ledger.module';

export const LedgerService: ServiceDefinition<typeof LedgerEnv> = {
  service: 'ledger',
  env: LedgerEnv,
  module: (core) => LedgerModule.forRoot(core),
};

if (require.main === module) void runService(LedgerService);
