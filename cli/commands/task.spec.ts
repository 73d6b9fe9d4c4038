import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pack, type Header } from 'tar-stream';
import { parseExecutionOutput } from '../../apps/container-manager/src/storage/object-io';
import { CliError } from '../output';
import { writeOutputFiles } from './task';

/** A tar as an attacker would craft it: any names, any types, any link targets. */
async function craftedTar(entries: (Partial<Header> & { name: string; content?: string })[]): Promise<Buffer> {
  const p = pack();
  const chunks: Buffer[] = [];
  const done = new Promise<Buffer>((resolve) => {
    p.on('data', (c: unknown) => void chunks.push(c as Buffer));
    p.on('end', () => resolve(Buffer.concat(chunks)));
  });
  for (const { content, ...header } of entries) {
    await new Promise<void>((resolve, reject) => p.entry(header, content ?? '', (err?: Error | null) => (err ? reject(err) : resolve())));
  }
  p.finalize();
  return done;
}

describe('mesh task output --out: nothing is written outside the folder', () => {
  let root: string;
  let out: string;
  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'mesh-task-output-'));
    out = join(root, 'out');
    mkdirSync(out);
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  const write = async (entries: (Partial<Header> & { name: string; content?: string })[]) =>
    writeOutputFiles(out, await parseExecutionOutput(await craftedTar(entries)));

  it('given an output of regular files, when written, then they land under the folder', async () => {
    expect(
      await write([
        { name: 'out/a.txt', content: 'A' },
        { name: 'out/sub/b.txt', content: 'B' },
      ]),
    ).toEqual(['a.txt', 'sub/b.txt']);
    expect(readFileSync(join(out, 'sub/b.txt'), 'utf8')).toBe('B');
  });

  it('given entries with "..", an absolute path, or a symlink pointing out, when written, then it refuses naming each and writes nothing', async () => {
    const attempt = write([
      { name: 'out/fine.txt', content: 'fine' },
      { name: 'out/../../escaped.txt', content: 'x' },
      { name: 'out//tmp/absolute.txt', content: 'x' },
      { name: 'out/passwd', type: 'symlink', linkname: '/etc/passwd' },
      { name: 'out/up', type: 'symlink', linkname: '../../..' },
    ]);
    await expect(attempt).rejects.toThrow(CliError);
    const message = await attempt.catch((err: Error) => err.message);
    expect(message).toContain('nothing was written');
    expect(message).toContain('"../../escaped.txt" contains ".."');
    expect(message).toContain('"/tmp/absolute.txt" is an absolute path');
    expect(message).toContain('link "passwd" points outside');
    expect(message).toContain('link "up" points outside');
    expect(existsSync(join(out, 'fine.txt'))).toBe(false);
    expect(existsSync(join(root, 'escaped.txt'))).toBe(false);
  });

  it('given a symlink already in the folder, when a file would be written through it, then it refuses', async () => {
    mkdirSync(join(root, 'elsewhere'));
    symlinkSync(join(root, 'elsewhere'), join(out, 'dir'));
    await expect(write([{ name: 'out/dir/x.txt', content: 'x' }])).rejects.toThrow(/would be written through the symbolic link/);
    expect(existsSync(join(root, 'elsewhere', 'x.txt'))).toBe(false);
    expect(lstatSync(join(out, 'dir')).isSymbolicLink()).toBe(true);
  });

  it('given a file name with terminal escapes, when refused, then the message carries no control sequence', async () => {
    const message = await write([{ name: 'out/../\u001b]0;owned\u0007\u001b[2Jx', content: 'x' }]).catch((err: Error) => err.message);
    expect(message).toContain('contains ".."');
    expect(message.includes('\u001b') || message.includes('\u0007')).toBe(false);
  });
});
