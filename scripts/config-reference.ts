/** `npm run config:reference`: the README's configuration table, from the same specs the services validate with. */
import { commonEnv, describeConfig, type EnvSpec } from '@mesh/config';
import { SERVICES } from '@mesh/contracts';

export function configReference(): string {
  const sections: [string, EnvSpec][] = [['all services', commonEnv]];
  for (const service of SERVICES) {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const mod = require(`../apps/${service}/src/config`) as Record<string, EnvSpec>;
    const spec = Object.values(mod).find((v) => v && typeof v === 'object');
    if (spec) sections.push([service, spec]);
  }
  const lines = ['| variable | service | default | meaning |', '| --- | --- | --- | --- |'];
  for (const [service, spec] of sections) {
    for (const row of describeConfig(spec))
      lines.push(`| \`${row.variable}\` | ${service} | ${row.default ? `\`${row.default}\`` : ''} | ${row.description} |`);
  }
  return lines.join('\n');
}

if (require.main === module) console.log(configReference());
