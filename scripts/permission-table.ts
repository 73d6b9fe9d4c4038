/** docs/security.md's permission table, generated from libs/contracts/src/permissions.ts (`npm run docs` refreshes it). */
import { SERVICES, SERVICE_CONSUMES, inboxPrefixOf, permissionsOf, type Identity, type NatsPermissions } from '@mesh/contracts';

const code = (subjects: readonly string[]) => (subjects.length ? subjects.map((s) => `\`${s}\``).join('<br>') : '-');

function row(identity: Identity, p: NatsPermissions): string {
  const who = identity.kind === 'tenant' ? 'tenant `<t>`' : identity.kind === 'operator' ? 'operator' : `service \`${identity.name}\``;
  const sub = [...p.subscribe.allow];
  return `| ${who} | \`${inboxPrefixOf(identity)}\` | ${code(p.publish.allow)} | ${code(p.publish.deny)} | ${code(sub)} | ${p.allow_responses ? 'yes' : 'no'} |`;
}

export function permissionTable(): string {
  const identities: Identity[] = [
    ...SERVICES.map((name): Identity => ({ kind: 'service', name })),
    { kind: 'operator', name: 'operator' },
    { kind: 'tenant', name: '<t>', tenantId: '<t>' },
  ];
  const lines = [
    '| identity | inbox prefix | publish: allow | publish: deny | subscribe: allow | replies to requests received |',
    '| --- | --- | --- | --- | --- | --- |',
    ...identities.map((i) => row(i, permissionsOf(i))),
    '',
    '| service | durable consumers (`@OnEvents`, checked at start) | live reads (`store.subscribe`, tenant feed) | reads the whole log |',
    '| --- | --- | --- | --- |',
    ...SERVICES.map(
      (s) =>
        `| \`${s}\` | ${SERVICE_CONSUMES[s].durable.join(', ') || '-'} | ${SERVICE_CONSUMES[s].live.join(', ') || '-'} | ${SERVICE_CONSUMES[s].readsWholeLog ? 'yes' : 'no'} |`,
    ),
  ];
  return lines.join('\n');
}

if (require.main === module) console.log(permissionTable());
