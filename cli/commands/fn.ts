import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { call, withClient } from '../connection';
import { UsageError, emit, table } from '../output';

const int = (name: string) => (v: string) => {
  if (!/^\d+$/.test(v)) throw new UsageError(`--${name} must be a whole number, got "${v}"`);
  return Number(v);
};

/** "512Mi", "1Gi", "268435456" -> bytes. */
export function parseBytes(v: string): number {
  const m = /^(\d+)(Ki|Mi|Gi)?$/.exec(v);
  if (!m) throw new UsageError(`--memory must be bytes or a number with Ki/Mi/Gi, got "${v}"`);
  return Number(m[1]) * { Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3, '': 1 }[m[2] ?? '']!;
}

export function registerFn(program: Command) {
  const fn = program.command('fn').description('deploy and list functions (scheduler)');

  fn.command('deploy <name>')
    .description('deploy or update a function: a container image plus a bash script run as `bash <script> <input> <outdir>`')
    .requiredOption('--image <image>', 'container image, e.g. mesh/task-base:latest')
    .requiredOption('--script <file>', 'bash script file')
    .option('--cpu-min <millicores>', 'lowest CPU limit the scaler may set', int('cpu-min'))
    .option('--cpu-max <millicores>', 'highest CPU limit the scaler may set', int('cpu-max'))
    .option('--cpu <millicores>', 'initial CPU limit', int('cpu'))
    .option('--memory <bytes>', 'memory limit, e.g. 256Mi', parseBytes)
    .option('--timeout <ms>', 'kill a task after this long', int('timeout'))
    .option('--max-attempts <n>', 'attempts before a task fails', int('max-attempts'))
    .option('--network', 'give the container a network (default none)')
    .option('--price-plan <id>', 'price plan id; it must exist (mesh plan set). Default: the plan set for this function, else the default plan')
    .action((name: string, o: Record<string, unknown>) =>
      withClient(async (client) => {
        let script: string;
        try {
          script = readFileSync(o.script as string, 'utf8');
        } catch (err) {
          throw new UsageError(`--script: cannot read ${o.script}: ${(err as Error).message}`);
        }
        const body = {
          functionId: name,
          image: o.image,
          script,
          cpuMinMillis: o.cpuMin,
          cpuMaxMillis: o.cpuMax,
          cpuInitialMillis: o.cpu,
          memoryBytes: o.memory,
          timeoutMs: o.timeout,
          maxAttempts: o.maxAttempts,
          network: o.network ? true : undefined,
          pricePlanId: o.pricePlan,
        };
        const result = await call(client, 'mesh.api.scheduler.deploy-function', JSON.parse(JSON.stringify(body)));
        emit(result, () => console.log(`function ${name} deployed${result?.version ? ` (version ${result.version})` : ''}`));
      }),
    );

  fn.command('list')
    .description('list deployed functions')
    .action(() =>
      withClient(async (client) => {
        const result = await call(client, 'mesh.query.scheduler.functions', {});
        const rows = (Array.isArray(result) ? result : (result?.functions ?? [])) as Record<string, unknown>[];
        emit(result, () =>
          table(
            rows.map((f) => ({
              function: f.functionId,
              version: f.version,
              image: f.image,
              cpu: `${f.cpuMinMillis}-${f.cpuMaxMillis}m`,
              memory: f.memoryBytes,
              timeoutMs: f.timeoutMs,
            })),
          ),
        );
      }),
    );
}
