import { z } from 'zod';
import { MAC_KEY_ID, MAC_SECRET_MIN_BYTES, MacKeyRing } from './mac';
import { createSecretFileOnce, readSecretFile } from './secret-file';

/** Where the ledger keeps its MAC keys when LEDGER_MAC_KEY_FILE is not set (relative to the working directory). */
export const DEFAULT_MAC_KEY_FILE = '.data/secrets/ledger-mac.key';

/** A key file is a few hundred bytes per key: anything far larger is not one. */
const KEY_FILE_MAX_BYTES = 64 * 1024;

/**
 * The key file (JSON, mode 0600): one active key and the older ones kept for verification.
 * `fromPosition` is the log head when the key was created (a decimal string: positions are bigint).
 */
const keyFileSchema = z.strictObject({
  activeKeyId: z.string().regex(MAC_KEY_ID, { error: `must match ${MAC_KEY_ID.source}` }),
  keys: z
    .array(
      z.strictObject({
        id: z.string().regex(MAC_KEY_ID, { error: `must match ${MAC_KEY_ID.source}` }),
        secret: z
          .string()
          .regex(/^([0-9a-f]{2})+$/, { error: 'must be lowercase hex' })
          .min(MAC_SECRET_MIN_BYTES * 2, { error: `must hold at least ${MAC_SECRET_MIN_BYTES} bytes (${MAC_SECRET_MIN_BYTES * 2} hex digits)` }),
        createdAtMs: z.int().min(0),
        fromPosition: z.string().regex(/^\d{1,20}$/, { error: 'must be a decimal log position' }),
      }),
    )
    .min(1)
    .max(100),
});

/** The MAC key ring in `path`, or undefined when there is no such file. Errors name the file and the field, never the secret. */
export async function readMacKeyRing(path: string): Promise<MacKeyRing | undefined> {
  const text = await readSecretFile(path, 'MAC key file', KEY_FILE_MAX_BYTES);
  if (text === undefined) return undefined;
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    // The parser's message may quote the text (a secret): say only where.
    throw new Error(`MAC key file ${path}: not valid JSON`);
  }
  const parsed = z.safeParse(keyFileSchema, json);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.map(String).join('.') || '(file)'}: ${i.message}`).join('; ');
    throw new Error(`MAC key file ${path}: ${issues}`);
  }
  try {
    return new MacKeyRing(
      parsed.data.keys.map((k) => ({ id: k.id, secret: Buffer.from(k.secret, 'hex'), createdAtMs: k.createdAtMs, fromPosition: BigInt(k.fromPosition) })),
      parsed.data.activeKeyId,
    );
  } catch (err) {
    throw new Error(`MAC key file ${path}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
}

/**
 * The MAC key ring in `path`, created when there is none: a new random key whose `fromPosition` is
 * the log head now (`headPosition()`), written with mode 0600 in a folder of mode 0700. Creation is
 * atomic (a complete temp file hard-linked into place), so two ledgers starting together end up with
 * the same key: the second one's link fails and it reads the first one's file.
 */
export async function ensureMacKeyRing(path: string, headPosition: () => Promise<bigint>): Promise<{ ring: MacKeyRing; created: boolean }> {
  const existing = await readMacKeyRing(path);
  if (existing) return { ring: existing, created: false };
  const ring = MacKeyRing.generate(await headPosition());
  if (!(await createSecretFileOnce(path, 'MAC key file', keyFileText(ring)))) {
    const other = await readMacKeyRing(path);
    if (!other) throw new Error(`MAC key file ${path}: exists but cannot be read`);
    return { ring: other, created: false };
  }
  return { ring, created: true };
}

/** The key file's text for a ring (the only place a secret is written out). */
export function keyFileText(ring: MacKeyRing): string {
  const keys = ring.list().map((k) => ({ id: k.id, secret: k.secret.toString('hex'), createdAtMs: k.createdAtMs, fromPosition: k.fromPosition.toString() }));
  return `${JSON.stringify({ activeKeyId: ring.activeKeyId, keys }, null, 2)}\n`;
}
