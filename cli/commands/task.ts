import { lstatSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Command } from 'commander';
import { messageOf } from '@mesh/common';
import { nanos, type NatsConnection } from 'nats';
import { bucketReplicas } from '@mesh/eventstore';
import {
  LIMITS,
  OBJECT_STORE_DEFAULTS,
  TASK_OUTPUT_CHUNK_BYTES_MAX,
  cancelTaskRequest,
  OPERATOR_OWNER,
  inputBucketOf,
  submitTaskRequest,
  taskOutputRequest,
  taskRequest,
  tasksRequest,
} from '@mesh/contracts';
import type { MeshClient } from '@mesh/runtime';
import { call, definedOnly, withClient } from '../connection';
import { CliError, UsageError, emit, keyValues, progress, stripControls, table } from '../output';

const TERMINAL = new Set(['succeeded', 'failed', 'cancelled']);
/** Longest `--wait` before giving up (the task keeps running). */
const WAIT_MAX_MS = 6 * 3600_000;

/** A positive integer from the environment (the container-manager's variable of the same name), else the default. */
function envInt(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isSafeInteger(value) || value < 1) throw new UsageError(`${name}: must be a positive integer, got "${raw}"`);
  return value;
}

/**
 * Inputs up to LIMITS.requestInputBytesMax travel inline (the scheduler stores one larger than an
 * event carries in the owner's input bucket); a tenant has no JetStream access, so that is its
 * limit. The operator's larger inputs go to its input bucket (`mesh-input-operator`) in the object
 * store: the only bucket a node reads the operator's task inputs from.
 * The size limit is checked before anything is stored (the container-manager would refuse a larger
 * item anyway, after the bytes had filled the store), and a new bucket gets the TTL of the objects.
 */
async function inputFor(nc: NatsConnection, tenantId: string | undefined, bytes: Buffer): Promise<unknown> {
  // The node's limit first, whichever way the input travels: a larger item would only fail on the node.
  const maxBytes = envInt('INPUT_MAX_BYTES', OBJECT_STORE_DEFAULTS.inputMaxBytes);
  if (bytes.length > maxBytes) {
    throw new UsageError(
      `--input: the input is ${bytes.length} bytes, more than INPUT_MAX_BYTES=${maxBytes} bytes (the largest input item a node reads); nothing was stored`,
    );
  }
  if (bytes.length <= LIMITS.requestInputBytesMax) return { inline: bytes.toString('base64') };
  if (tenantId !== undefined) {
    throw new UsageError(
      `--input: the input is ${bytes.length} bytes, more than LIMITS.requestInputBytesMax=${LIMITS.requestInputBytesMax} bytes, the largest input a tenant sends (inline in submit-task); nothing was sent`,
    );
  }
  const bucket = inputBucketOf(OPERATOR_OWNER);
  const key = `in-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 10)}`;
  const os = await nc.jetstream().views.os(bucket, { ttl: nanos(envInt('OBJECT_TTL_MS', OBJECT_STORE_DEFAULTS.ttlMs)), replicas: await bucketReplicas(nc) });
  await os.putBlob({ name: key }, new Uint8Array(bytes));
  progress(`input (${bytes.length} bytes) stored in object store ${bucket}/${key}`);
  return { objectRef: { bucket, key } };
}

/** What an output object holds, as far as writing it into a folder is concerned. */
export interface OutputFiles {
  files: Record<string, Buffer>;
  links: { path: string; target: string }[];
}

/** Why `path` may not be written under `dir` (it would land outside, or through a link on disk), or undefined. */
function pathProblem(dir: string, path: string): string | undefined {
  if (path === '' || path.includes('\0')) return 'is not a file name';
  if (isAbsolute(path) || path.startsWith('\\') || /^[A-Za-z]:/.test(path)) return 'is an absolute path';
  if (path.split(/[\\/]/).includes('..')) return 'contains ".."';
  const root = resolve(dir);
  const target = resolve(root, path);
  const inside = relative(root, target);
  if (inside === '' || inside.startsWith(`..${sep}`) || inside === '..' || isAbsolute(inside)) return `resolves outside ${dir}`;
  // A link already on disk inside the folder would carry the write elsewhere.
  let at = root;
  for (const part of inside.split(sep)) {
    at = join(at, part);
    let isLink = false;
    try {
      isLink = lstatSync(at).isSymbolicLink();
    } catch {
      break; // Does not exist yet: nothing below it does either.
    }
    if (isLink) return `would be written through the symbolic link ${at}`;
  }
  return undefined;
}

/**
 * Checks every entry of an output against `dir` before writing any: a file outside the folder
 * (absolute path, `..`, through a link already on disk) or a link that points outside refuses the
 * whole output, naming each offending entry (a link pointing inside is not created: only regular
 * files are written). Returns the paths written.
 */
export function writeOutputFiles(dir: string, output: OutputFiles): string[] {
  const problems: string[] = [];
  for (const path of Object.keys(output.files)) {
    const problem = pathProblem(dir, path);
    if (problem) problems.push(`${JSON.stringify(path)} ${problem}`);
  }
  for (const link of output.links) {
    const problem = pathProblem(dir, link.path);
    if (problem) problems.push(`link ${JSON.stringify(link.path)} ${problem}`);
    else if (pathProblem(dir, isAbsolute(link.target) ? link.target : join(dirname(link.path), link.target)) !== undefined)
      problems.push(`link ${JSON.stringify(link.path)} points outside ${dir} (to ${JSON.stringify(link.target)})`);
  }
  if (problems.length > 0) {
    throw new CliError(
      stripControls(`the output has entries that would escape ${dir}; nothing was written:\n  ${problems.slice(0, 20).join('\n  ')}`),
      'the output was not made by a node as it stores outputs (regular files under out/ only); inspect it with --json',
    );
  }
  const written: string[] = [];
  for (const [path, content] of Object.entries(output.files)) {
    const target = join(dir, path);
    mkdirSync(dirname(target), { recursive: true });
    writeFileSync(target, content);
    written.push(path);
  }
  return written;
}

/** Largest output object read (the container-manager stores at most OUTPUT_DIR_MAX_BYTES plus stdout and stderr). */
const OUTPUT_OBJECT_BYTES_MAX = 4 * 1024 ** 3;

/**
 * A task's output object, read through the scheduler's task-output query chunk by chunk (the one
 * way for every caller: tenants have no JetStream access).
 */
async function readOutputObject(client: MeshClient, taskId: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let offset = 0;
  for (let asked = 0; ; asked++) {
    const { data } = await call(client, taskOutputRequest, { taskId, offset, limitBytes: TASK_OUTPUT_CHUNK_BYTES_MAX });
    if (data.totalBytes > OUTPUT_OBJECT_BYTES_MAX) throw new CliError(`the output of task ${taskId} is ${data.totalBytes} bytes, more than this CLI reads`);
    const chunk = Buffer.from(data.chunk, 'base64');
    chunks.push(chunk);
    offset += chunk.length;
    if (data.done) return Buffer.concat(chunks);
    // Each answer but the last carries bytes: a reply without any would never end.
    if (chunk.length === 0 || asked > data.totalBytes / TASK_OUTPUT_CHUNK_BYTES_MAX + 1)
      throw new CliError(`task ${taskId}: the output ended early at ${offset} of ${data.totalBytes} bytes`);
  }
}

export function registerTask(program: Command) {
  const task = program.command('task').description('submit, inspect and cancel tasks (scheduler)');

  task
    .command('submit <function>')
    .description('submit one task: one invocation of <function> on one input item')
    .requiredOption('--wallet <id>', 'wallet that pays for it')
    .option('--input <file>', 'input item from a file')
    .option('--input-text <text>', 'input item as text')
    .option('--priority <0-9>', 'higher runs first within the wallet', '0')
    .option('--id <taskId>', 'task id (default: generated)')
    .option('--wait', 'wait until the task ends and print its outcome')
    .action((fn: string, o: { wallet: string; input?: string; inputText?: string; priority: string; id?: string; wait?: boolean }) =>
      withClient(async (client, nc) => {
        if (o.input && o.inputText !== undefined) throw new UsageError('give either --input <file> or --input-text <s>, not both');
        let bytes: Buffer;
        try {
          bytes = o.input ? readFileSync(o.input) : Buffer.from(o.inputText ?? '');
        } catch (err) {
          throw new UsageError(`--input: cannot read ${o.input}: ${messageOf(err)}`);
        }
        const body = {
          functionId: fn,
          walletId: o.wallet,
          input: await inputFor(nc, client.tenantId, bytes),
          priority: Number(o.priority),
          ...(o.id ? { taskId: o.id } : {}),
        };
        const submitted = await call(client, submitTaskRequest, body);
        const taskId = submitted.data.taskId;
        if (!o.wait) {
          emit(submitted.json, () => console.log(taskId));
          return;
        }
        progress(`task ${taskId} submitted; waiting`);
        const deadline = Date.now() + WAIT_MAX_MS;
        let lastState = '';
        for (;;) {
          const { data: t, json } = await call(client, taskRequest, { taskId });
          if (t.state !== lastState) {
            progress(`  ${new Date().toISOString().slice(11, 19)} ${t.state}${t.nodeId ? ` on ${t.nodeId}` : ''}${t.attempt ? ` (attempt ${t.attempt})` : ''}`);
            lastState = t.state;
          }
          if (TERMINAL.has(t.state)) {
            emit(json, () => keyValues({ taskId, state: t.state, attempts: t.attempt, reason: t.reason ?? '' }));
            if (t.state !== 'succeeded') process.exitCode = 1;
            return;
          }
          if (Date.now() > deadline) throw new CliError(`task ${taskId} still ${t.state} after waiting`, `follow it with \`mesh task get ${taskId}\``);
          await sleep(500);
        }
      }),
    );

  task
    .command('get <taskId>')
    .description('state, attempts, node, container and every transition of a task')
    .action((taskId: string) =>
      withClient(async (client) => {
        const { data: t, json } = await call(client, taskRequest, { taskId });
        emit(json, () => {
          const { history, ...rest } = t;
          keyValues(rest);
          if (history.length) {
            console.log('');
            table(history.map((h) => ({ position: h.position, type: h.type, at: h.occurredAt, detail: h.reason ?? h.nodeId ?? '' })));
          }
        });
      }),
    );

  task
    .command('list')
    .description('tasks, optionally of one wallet and/or in one state')
    .option('--wallet <id>', 'only this wallet')
    .option('--state <state>', 'pending|dispatched|running|succeeded|failed|cancelled')
    .option('--limit <n>', 'at most this many', '100')
    .action((o: { wallet?: string; state?: string; limit: string }) =>
      withClient(async (client) => {
        const { data, json } = await call(client, tasksRequest, definedOnly({ walletId: o.wallet, state: o.state, limit: Number(o.limit) }));
        emit(json, () =>
          table(
            data.tasks.map((t) => ({ task: t.taskId, function: t.functionId, wallet: t.walletId, state: t.state, attempt: t.attempt, node: t.nodeId ?? '' })),
          ),
        );
      }),
    );

  task
    .command('output <taskId>')
    .description('the output files, stdout and stderr of a finished task')
    .option('--out <dir>', 'write the output files into this folder')
    .action((taskId: string, o: { out?: string }) =>
      withClient(async (client) => {
        const { data: t } = await call(client, taskRequest, { taskId });
        if (!t.outputRef)
          throw new CliError(`task ${taskId} has no output (state ${t.state})`, t.state === 'succeeded' ? undefined : 'only finished tasks have output');
        const { parseExecutionOutput } = await import('../../apps/container-manager/src/storage/object-io');
        const output = await parseExecutionOutput(await readOutputObject(client, taskId));
        if (o.out) writeOutputFiles(o.out, output);
        emit({ taskId, files: Object.keys(output.files), stdout: output.stdout.toString(), stderr: output.stderr.toString() }, () => {
          // Everything below came from the task: shown without terminal control sequences.
          console.log(stripControls(`files: ${Object.keys(output.files).join(', ') || '(none)'}${o.out ? ` (written to ${o.out})` : ''}`));
          console.log('--- stdout');
          process.stdout.write(stripControls(output.stdout.toString()));
          console.log('--- stderr');
          process.stdout.write(stripControls(output.stderr.toString()));
        });
      }),
    );

  task
    .command('cancel <taskId>')
    .description('cancel a task; a running attempt is killed')
    .option('--reason <text>', 'why', 'cancelled by user')
    .action((taskId: string, o: { reason: string }) =>
      withClient(async (client) => {
        const { json } = await call(client, cancelTaskRequest, { taskId, reason: o.reason });
        emit(json, () => console.log(`task ${taskId} cancelled`));
      }),
    );
}
