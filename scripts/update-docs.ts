/** `npm run docs`: regenerates docs/asyncapi.json, docs/schemas/, the README's configuration table and docs/security.md's permission table. */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { configReference } from './config-reference';
import { permissionTable } from './permission-table';
import './export-contracts';

const readme = join(__dirname, '..', 'README.md');
const text = readFileSync(readme, 'utf8');
const begin = '<!-- config:begin -->';
const end = '<!-- config:end -->';
const updated = text.replace(new RegExp(`${begin}[\\s\\S]*${end}`), `${begin}\n${configReference()}\n${end}`);
writeFileSync(readme, updated);
console.log('README configuration table updated');

const security = join(__dirname, '..', 'docs', 'security.md');
const securityText = readFileSync(security, 'utf8');
const permissionsBegin = '<!-- permissions:begin -->';
const permissionsEnd = '<!-- permissions:end -->';
if (!securityText.includes(permissionsBegin)) throw new Error(`docs/security.md has no ${permissionsBegin} marker`);
writeFileSync(
  security,
  securityText.replace(new RegExp(`${permissionsBegin}[\\s\\S]*${permissionsEnd}`), `${permissionsBegin}\n${permissionTable()}\n${permissionsEnd}`),
);
console.log('docs/security.md permission table updated');
