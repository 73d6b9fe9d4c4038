import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { permissionTable } from '../../scripts/permission-table';

/** docs/security.md shows the permissions nats-server enforces: the table generated from libs/contracts/src/permissions.ts. */
describe('docs/security.md permission table', () => {
  it('is what libs/contracts/src/permissions.ts generates (run `npm run docs` to refresh it)', () => {
    const doc = readFileSync(join(__dirname, '..', '..', 'docs', 'security.md'), 'utf8');
    const table =
      /<!-- permissions:begin -->\n([\s\S]*)\n<!-- permissions:end -->/.exec(doc)?.[1] ?? '(no permissions:begin/permissions:end markers in docs/security.md)';
    expect(table).toBe(permissionTable());
  });
});
