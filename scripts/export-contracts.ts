/** `npm run contracts`: writes docs/asyncapi.json and docs/schemas/<EventType>.json from the zod definitions. */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { asyncApiDocument, catalog, eventJsonSchema } from '@mesh/contracts';

const docs = join(__dirname, '..', 'docs');
mkdirSync(join(docs, 'schemas'), { recursive: true });
writeFileSync(join(docs, 'asyncapi.json'), `${JSON.stringify(asyncApiDocument(), null, 2)}\n`);
for (const definition of catalog.all()) {
  writeFileSync(join(docs, 'schemas', `${definition.type}.json`), `${JSON.stringify(eventJsonSchema(definition), null, 2)}\n`);
}
console.log(`wrote docs/asyncapi.json and ${catalog.all().length} event schemas to docs/schemas/`);
