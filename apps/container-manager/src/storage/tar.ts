import { Readable } from 'node:stream';
import { extract, pack } from 'tar-stream';

/** Entries to pack: path -> content. */
export type TarEntries = Record<string, Buffer>;

/** A tar of the given files (mode 0644) and folders (path ending in `/` with null content, mode 0755). */
export async function packTar(entries: Record<string, Buffer | null>): Promise<Buffer> {
  const p = pack();
  const chunks: Buffer[] = [];
  const done = new Promise<Buffer>((resolve, reject) => {
    p.on('data', (c: unknown) => void chunks.push(c as Buffer));
    p.on('end', () => resolve(Buffer.concat(chunks)));
    p.on('error', reject);
  });
  for (const [name, content] of Object.entries(entries)) {
    if (content === null) {
      await new Promise<void>((resolve, reject) =>
        p.entry({ name, type: 'directory', mode: 0o755, mtime: new Date(0) }, (err) => (err ? reject(err) : resolve())),
      );
      continue;
    }
    await new Promise<void>((resolve, reject) =>
      p.entry({ name, size: content.length, mode: 0o644, mtime: new Date(0) }, content, (err) => (err ? reject(err) : resolve())),
    );
  }
  p.finalize();
  return done;
}

/** A link entry of a tar (symbolic or hard): where it is and what it points to. */
export interface TarLink {
  path: string;
  target: string;
}

/**
 * Regular files of a tar by their path (leading `./` removed); folders and links are skipped (and
 * listed in `links` when given, so a reader can refuse what they point to).
 */
export async function unpackTar(tar: Buffer, maxFiles = 10_000, links?: TarLink[]): Promise<TarEntries> {
  const files: TarEntries = {};
  let count = 0;
  const ex = extract();
  const source = Readable.from([tar]);
  source.pipe(ex);
  for await (const entry of ex) {
    const chunks: Buffer[] = [];
    for await (const chunk of entry) chunks.push(chunk as Buffer);
    if ((entry.header.type === 'symlink' || entry.header.type === 'link') && links && links.length < maxFiles) {
      links.push({ path: entry.header.name.replace(/^\.\//, ''), target: entry.header.linkname ?? '' });
    }
    if (entry.header.type !== 'file') continue;
    if (++count > maxFiles) throw new Error(`tar has more than ${maxFiles} files`);
    const name = entry.header.name.replace(/^\.\//, '');
    if (name) files[name] = Buffer.concat(chunks);
  }
  return files;
}
