/** `npm run docs`: regenerates docs/asyncapi.json, docs/schemas/ and the README's configuration table. */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { configReference } from './config-reference';
import './export-contracts';

const readme = join(__dirname, '..', 'README.md');
const text = readFileSync(readme, 'utf8');
const begin = '<!-- config:begin -->';
const end = '<!-- config:end -->';
const updated = text.replace(new RegExp(`${begin}[\\s\\S]*${end}`), `${begin}\n${configReference()}\n${end}`);
writeFileSync(readme, updated);
console.log('README configuration table updated');
