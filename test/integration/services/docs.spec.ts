import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { commonEnv } from '@mesh/config';
import { SERVICES, type ServiceName } from '@mesh/contracts';
import { ContainerManagerEnv } from '../../../apps/container-manager/src/config';
import { CreditManagerEnv } from '../../../apps/credit-manager/src/config';
import { LedgerEnv } from '../../../apps/ledger/src/config';
import { ScalerEnv } from '../../../apps/scaler/src/config';
import { SchedulerEnv } from '../../../apps/scheduler/src/config';

/** The environment each service validates (a new service fails to compile here until it is listed). */
const SERVICE_ENV: Record<ServiceName, object> = {
  scheduler: SchedulerEnv,
  'container-manager': ContainerManagerEnv,
  'credit-manager': CreditManagerEnv,
  scaler: ScalerEnv,
  ledger: LedgerEnv,
};

/** The README's configuration reference lists every variable the services validate. */
describe('README configuration reference', () => {
  const readme = readFileSync(join(__dirname, '..', '..', '..', 'README.md'), 'utf8');
  const variables = [...Object.keys(commonEnv), ...SERVICES.flatMap((s) => Object.keys(SERVICE_ENV[s]))];

  it.each(variables)('documents %s (run `npm run docs` after adding a variable)', (variable) => {
    expect(readme).toContain(`| \`${variable}\` |`);
  });
});
