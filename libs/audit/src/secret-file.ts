import { randomBytes } from 'node:crypto';
import { chmod, link, mkdir, readFile, unlink, writeFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';

/**
 * Files of secrets the ledger creates on first start (the MAC key file, the HTTP token key): read
 * whole, bounded in size, and created atomically with mode 0600 in a folder of mode 0700. Errors
 * name the file (`what` and the path), never its content.
 */

/** The text of the secret file at `path`, or undefined when there is no such file. */
export async function readSecretFile(path: string, what: string, maxBytes: number): Promise<string | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return undefined;
    throw new Error(`${what} ${path}: cannot read it`, { cause: err });
  }
  if (text.length > maxBytes) throw new Error(`${what} ${path}: larger than ${maxBytes} bytes, not a key file`);
  return text;
}

/**
 * Writes `text` to `path` unless a file is there already: a complete temp file (mode 0600) is
 * hard-linked into place, so two processes creating it together end up with the same file (the
 * second one's link fails). Creates the folder with mode 0700. Returns false when the file existed
 * (the caller reads it then).
 */
export async function createSecretFileOnce(path: string, what: string, text: string): Promise<boolean> {
  const dir = dirname(resolve(path));
  const made = await mkdir(dir, { recursive: true, mode: 0o700 });
  if (made !== undefined) await chmod(dir, 0o700); // the mode given to mkdir is masked by the umask
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  await writeFile(tmp, text, { mode: 0o600, flag: 'wx' });
  try {
    await link(tmp, path);
    return true;
  } catch (err) {
    if (!isErrno(err, 'EEXIST')) throw new Error(`${what} ${path}: cannot create it`, { cause: err });
    return false;
  } finally {
    await unlink(tmp).catch(() => undefined);
  }
}

function isErrno(err: unknown, code: string): boolean {
  // Not `instanceof Error`: errors from node's fs may come from another realm (a vm context, Jest).
  return typeof err === 'object' && err !== null && 'code' in err && err.code === code;
}
