import type { Command } from 'commander';
import { call, withClient } from '../connection';
import { UsageError, emit, table } from '../output';

/** An ISO date or epoch milliseconds -> epoch milliseconds. */
export function parseWhen(v: string): number {
  if (/^\d+$/.test(v)) return Number(v);
  const ms = Date.parse(v);
  if (Number.isNaN(ms)) throw new UsageError(`--from must be epoch milliseconds or an ISO date such as 2026-12-01T00:00:00Z, got "${v}"`);
  return ms;
}

interface PlanVersion {
  planId: string;
  version: number;
  currency: string;
  cpuPerCoreHour: string;
  memoryPerGibHour: string;
  perInvocation: string;
  billing: string;
  functionId?: string;
  effectiveFromMs: number;
}

export function registerPlan(program: Command) {
  const plan = program.command('plan').description('price plans: what a core-hour, a GiB-hour and an invocation cost (credit-manager)');

  plan
    .command('set <planId>')
    .description('set a price plan, or a new version of it from --from on (charges already made are not repriced; the same prices again is a no-op)')
    .requiredOption('--cpu <price>', 'price of one core-hour of CPU, in GRC (e.g. 0.6); must be > 0')
    .option('--memory <price>', 'price of one GiB-hour of memory (default 0)')
    .option('--invocation <price>', 'price of one task invocation (default 0)')
    .option('--billing <mode>', 'used (CPU actually used, the default) or allocated (the CPU limit)')
    .option('--function <id>', 'make it the plan of this deployed function (unless the function names its own plan)')
    .option('--from <when>', 'takes effect from this moment: epoch ms or ISO date (default now)', parseWhen)
    .action((planId: string, o: { cpu: string; memory?: string; invocation?: string; billing?: string; function?: string; from?: number }) =>
      withClient(async (client) => {
        if (o.billing !== undefined && o.billing !== 'used' && o.billing !== 'allocated')
          throw new UsageError(`--billing must be used or allocated, got "${o.billing}"`);
        const body = {
          planId,
          cpuPerCoreHour: o.cpu,
          memoryPerGibHour: o.memory,
          perInvocation: o.invocation,
          billing: o.billing,
          functionId: o.function,
          effectiveFromMs: o.from,
        };
        const result = (await call(client, 'mesh.api.credit-manager.set-price-plan', JSON.parse(JSON.stringify(body)))) as {
          plan: PlanVersion;
          changed: boolean;
        };
        emit(result, () => {
          const p = result.plan;
          console.log(
            result.changed
              ? `price plan ${p.planId} version ${p.version}: ${p.cpuPerCoreHour} ${p.currency}/core-hour, ${p.memoryPerGibHour}/GiB-hour, ${p.perInvocation}/invocation, billing ${p.billing}, from ${new Date(p.effectiveFromMs).toISOString()}`
              : `price plan ${p.planId} unchanged (version ${p.version} has these prices)`,
          );
        });
      }),
    );

  plan
    .command('list [planId]')
    .description('every price plan (or one) with the version in effect now, and the plan each known function is priced with')
    .action((planId: string | undefined) =>
      withClient(async (client) => {
        const result = (await call(client, 'mesh.query.credit-manager.price-plans', planId ? { planId } : {})) as {
          plans: { planId: string; current: PlanVersion | null; versions: PlanVersion[] }[];
          functions: { functionId: string; planId: string; planVersion: number }[];
        };
        emit(result, () => {
          table(
            result.plans.map((p) => ({
              plan: p.planId,
              versions: p.versions.length,
              current: p.current ? `v${p.current.version}` : '(none yet)',
              cpuPerCoreHour: p.current?.cpuPerCoreHour ?? '',
              memoryPerGibHour: p.current?.memoryPerGibHour ?? '',
              perInvocation: p.current?.perInvocation ?? '',
              billing: p.current?.billing ?? '',
            })),
          );
          if (result.functions.length > 0) {
            console.log('');
            table(result.functions.map((f) => ({ function: f.functionId, plan: f.planId, version: f.planVersion })));
          }
        });
      }),
    );
}
