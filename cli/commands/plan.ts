import type { Command } from 'commander';
import { pricePlansQuery, setPricePlanRequest } from '@mesh/contracts';
import { call, definedOnly, withClient } from '../connection';
import { UsageError, emit, table } from '../output';

/** An ISO date or epoch milliseconds -> epoch milliseconds. */
export function parseWhen(v: string): number {
  if (/^\d+$/.test(v)) return Number(v);
  const ms = Date.parse(v);
  if (Number.isNaN(ms)) throw new UsageError(`--from must be epoch milliseconds or an ISO date such as 2026-12-01T00:00:00Z, got "${v}"`);
  return ms;
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
        const { data, json } = await call(client, setPricePlanRequest, definedOnly(body));
        emit(json, () => {
          const p = data.plan;
          console.log(
            data.changed
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
        const { data, json } = await call(client, pricePlansQuery, planId ? { planId } : {});
        emit(json, () => {
          table(
            data.plans.map((p) => ({
              plan: p.planId,
              versions: p.versions.length,
              current: p.current ? `v${p.current.version}` : '(none yet)',
              cpuPerCoreHour: p.current?.cpuPerCoreHour ?? '',
              memoryPerGibHour: p.current?.memoryPerGibHour ?? '',
              perInvocation: p.current?.perInvocation ?? '',
              billing: p.current?.billing ?? '',
            })),
          );
          if (data.functions.length > 0) {
            console.log('');
            table(data.functions.map((f) => ({ function: f.functionId, plan: f.planId, version: f.planVersion })));
          }
        });
      }),
    );
}
