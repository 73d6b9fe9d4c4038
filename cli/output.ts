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

/** A value as tables and key-values show it: objects as JSON, anything else as its string form. */
function shown(v: unknown): string {
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
