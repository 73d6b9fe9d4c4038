import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { messageOf } from '@mesh/common';
import { deployFunctionRequest, functionsRequest } from '@mesh/contracts';
import { call, definedOnly, withClient } from '../connection';
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

interface DeployOptions {
  image: string;
  script: string;
  cpuMin?: number;
  cpuMax?: number;
  cpu?: number;
  memory?: number;
  timeout?: number;
  maxAttempts?: number;
  network?: boolean;
  pricePlan?: string;
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
    .option(
      '--price-plan <id>',
      'price plan id (operator only: a tenant is refused); it must exist (mesh plan set). Default: the plan set for this function, else the default plan',
    )
    .action((name: string, o: DeployOptions) =>
      withClient(async (client) => {
        let script: string;
        try {
          script = readFileSync(o.script, 'utf8');
        } catch (err) {
          throw new UsageError(`--script: cannot read ${o.script}: ${messageOf(err)}`);
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
        const { data, json } = await call(client, deployFunctionRequest, definedOnly(body));
        emit(json, () => console.log(`function ${name} deployed (version ${data.version})`));
      }),
    );

  fn.command('list')
    .description("list deployed functions (a tenant: its own and the operator's public ones)")
    .action(() =>
      withClient(async (client) => {
        const { data, json } = await call(client, functionsRequest, {});
        emit(json, () =>
          table(
            data.functions.map((f) => ({
              function: f.functionId,
              // A tenant sees its own functions and the operator's, which every tenant may run.
              owner: f.tenantId ?? 'operator (public)',
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
