import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { commonEnv } from '@mesh/config';
import { SERVICES } from '@mesh/contracts';

/** The README's configuration reference lists every variable the services validate. */
describe('README configuration reference', () => {
  const readme = readFileSync(join(__dirname, '..', '..', '..', 'README.md'), 'utf8');
  const variables = [
    ...Object.keys(commonEnv),
    ...SERVICES.flatMap((s) => Object.values(require(`../../../apps/${s}/src/config`) as Record<string, object>).flatMap((spec) => Object.keys(spec))),
  ];

  it.each(variables)('documents %s (run `npm run docs` after adding a variable)', (variable) => {
    expect(readme).toContain(`| \`${variable}\` |`);
  });
});
