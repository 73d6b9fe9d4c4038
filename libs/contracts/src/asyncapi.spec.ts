import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { asyncApiDocument } from './asyncapi';
import { catalog } from './catalog';
import { CATEGORY_OWNERS } from './ids';

describe('the published contracts', () => {
  it('docs/asyncapi.json is the document generated from the code (run `npm run contracts` after changing events)', () => {
    const committed: unknown = JSON.parse(readFileSync(join(__dirname, '..', '..', '..', 'docs', 'asyncapi.json'), 'utf8'));
    expect(committed).toEqual(JSON.parse(JSON.stringify(asyncApiDocument())));
  });

  it('lists every event type under the channel of its category', () => {
    const doc = asyncApiDocument() as { channels: Record<string, { address: string | null; messages: Record<string, unknown> }> };
    for (const definition of catalog.all()) {
      const channel = doc.channels[`events_${definition.category}`];
      expect(channel.address).toBe(`mesh.events.${definition.category}.{id}`);
      expect(Object.keys(channel.messages)).toContain(definition.type);
    }
  });

  it('puts every event type in a category that has exactly one writer', () => {
    for (const definition of catalog.all()) expect(CATEGORY_OWNERS[definition.category]).toBeDefined();
  });
});
