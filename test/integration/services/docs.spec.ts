import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { commonEnv } from '@mesh/config';
import { SERVICES, type ServiceName } from '@mesh/contracts';
import { configReference } from '../../../scripts/config-reference';
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

  it('is what `npm run config:reference` prints (run `npm run docs` to refresh it), but for the defaults read from the machine', () => {
    // NODE_CPU_MILLIS and NODE_MEMORY_BYTES default to this machine's cores and memory.
    const machineFree = (table: string) => table.replace(/^(\| `NODE_(?:CPU_MILLIS|MEMORY_BYTES)` \| [^|]+ \| )`\d+`/gm, '$1`<this machine>`');
    const table = /<!-- config:begin -->\n([\s\S]*)\n<!-- config:end -->/.exec(readme)?.[1] ?? '(no config:begin/config:end markers in README.md)';
    expect(machineFree(table)).toBe(machineFree(configReference()));
  });
});
