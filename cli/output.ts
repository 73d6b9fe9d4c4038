/** Printing for humans (aligned tables, progress) or machines (`--json`), and the exit codes. */
export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;

export class UsageError extends Error {}
/** An operation that failed; `hint` says what to do about it. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly hint?: string,
  ) {
    super(message);
  }
}

let jsonMode = false;
export const setJson = (on: boolean) => (jsonMode = on);
export const isJson = () => jsonMode;

const replacer = (_k: string, v: unknown) => (typeof v === 'bigint' ? v.toString() : v);

/** Prints `value` as JSON in --json mode, else calls `human` to print it. */
export function emit(value: unknown, human: () => void): void {
  if (jsonMode) process.stdout.write(`${JSON.stringify(value, replacer, 2)}\n`);
  else human();
}

/**
 * Terminal control sequences, which text from tasks (stdout, stderr, file names, failure reasons)
 * may carry to rewrite the screen, retitle the window, fake a prompt or hide lines: CSI
 * (ESC [ ... final byte, or its one-byte form U+009B), OSC / DCS / SOS / PM / APC strings (up to BEL
 * or ST), any other ESC sequence, and every other C0/C1 control character and DEL. Tab and line
 * feed stay (they only lay text out).
 */
const CONTROL_SEQUENCES =
  // eslint-disable-next-line no-control-regex
  /(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]?|(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?|\x1b[ -/]*[0-~]?|[\x00-\x08\x0b-\x1f\x7f-\x9f]/g;

/** Text from a task as it may be shown on a terminal: control sequences and characters removed (\n and \t kept). */
export function stripControls(text: string): string {
  return text.replace(CONTROL_SEQUENCES, '');
}

/** A value as tables and key-values show it: objects as JSON, anything else as its string form; never a control sequence. */
function shown(v: unknown): string {
  return stripControls(shownRaw(v));
}

function shownRaw(v: unknown): string {
  switch (typeof v) {
    case 'string':
      return v;
    case 'number':
    case 'bigint':
    case 'boolean':
    case 'symbol':
    case 'function':
      return v.toString();
    case 'undefined':
      return 'undefined';
    default:
      return v === null ? 'null' : JSON.stringify(v, replacer);
  }
}

export function table(rows: Record<string, unknown>[], columns?: string[]): void {
  if (rows.length === 0) {
    console.log('(none)');
    return;
  }
  const cols = columns ?? Object.keys(rows[0]);
  const cell = (v: unknown) => (v === undefined || v === null ? '' : shown(v));
  const widths = cols.map((c) => Math.min(60, Math.max(c.length, ...rows.map((r) => cell(r[c]).length))));
  console.log(cols.map((c, i) => c.toUpperCase().padEnd(widths[i])).join('  '));
  for (const r of rows) console.log(cols.map((c, i) => cell(r[c]).slice(0, 60).padEnd(widths[i])).join('  '));
}

export function keyValues(obj: Record<string, unknown>): void {
  const width = Math.max(...Object.keys(obj).map((k) => k.length));
  for (const [k, v] of Object.entries(obj)) console.log(`${k.padEnd(width)}  ${shown(v)}`);
}

/** Progress lines go to stderr so stdout stays clean for --json and pipes. */
export function progress(line: string): void {
  if (!jsonMode || process.env.MESH_PROGRESS) process.stderr.write(`${line}\n`);
}
