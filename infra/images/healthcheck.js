#!/usr/bin/env node
// HEALTHCHECK and Kubernetes exec probe of the service image: asks the service's NATS health
// subject (mesh.api.<service>.health, libs/contracts/src/requests/health.ts) and exits 0 when THIS
// container's service process answers:
//   node infra/images/healthcheck.js            liveness: status ok or degraded
//   node infra/images/healthcheck.js --ready    readiness: status ok only
// Every replica of a service answers the same subject, so the replies are collected and this
// container's is picked: the container-manager by its NODE_ID (details.nodeId), the others by pid
// and uptime (the reply's pid is the service's pid in its own namespace, 1 in every container, so
// the reply's uptime must also fit the local process's age). Better in the code: an instance name
// in the health reply (libs/runtime transport), then this match is exact for every service.
'use strict';
const { readFileSync, readdirSync } = require('node:fs');
const { join } = require('node:path');

const TIMEOUT_MS = Number(process.env.MESH_HEALTHCHECK_TIMEOUT_MS || 3000);
/** A transport starts answering health at most this long after its process started (catch-up). */
const STARTUP_MAX_MS = Number(process.env.MESH_HEALTHCHECK_STARTUP_MAX_MS || 600_000);
const CLOCK_SLACK_MS = 2000;
const ready = process.argv.includes('--ready');

function fail(message) {
  process.stderr.write(`healthcheck: ${message}\n`);
  process.exit(1);
}

/** The environment of a process (readable: same uid). */
function environOf(pid) {
  const pairs = readFileSync(join('/proc', String(pid), 'environ'), 'utf8').split('\0');
  return Object.fromEntries(pairs.filter((p) => p.includes('=')).map((p) => [p.slice(0, p.indexOf('=')), p.slice(p.indexOf('=') + 1)]));
}

/** The service process of this container: the one running start.js (pid 1 unless started with an init). */
function serviceProcess() {
  const ticksPerSecond = 100; // USER_HZ: 100 on every Linux architecture Docker runs on
  const bootSeconds = Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]);
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    let cmdline;
    try {
      cmdline = readFileSync(join('/proc', entry, 'cmdline'), 'utf8');
    } catch {
      continue; // exited meanwhile
    }
    const args = cmdline.split('\0');
    const at = args.findIndex((a) => a.endsWith('infra/images/start.js'));
    if (at < 0) continue;
    const service = args[at + 1] || environOf(entry).MESH_SERVICE;
    const stat = readFileSync(join('/proc', entry, 'stat'), 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const startTicks = Number(fields[19]); // field 22 of proc(5), counted after "pid (comm) "
    const ageMs = Math.round((bootSeconds - startTicks / ticksPerSecond) * 1000);
    return { pid: Number(entry), ageMs, service };
  }
  return undefined;
}

async function main() {
  const local = serviceProcess();
  if (!local) fail('no service process (infra/images/start.js) is running in this container');
  const service = local.service;
  if (!service) fail(`the process ${local.pid} names no service (argument or MESH_SERVICE)`);
  const nats = require(join(__dirname, '..', '..', 'node_modules', 'nats'));
  const options = {
    servers: (process.env.NATS_URL || 'nats://127.0.0.1:4222').split(',').map((u) => u.trim()),
    name: `healthcheck-${service}`,
    timeout: TIMEOUT_MS,
  };
  // The service's own credentials (libs/identity's JSON file): its nkey, and its inbox prefix (the
  // permission table lets an identity receive replies only there).
  if (process.env.NATS_CREDS_FILE) {
    require('./register-paths');
    Object.assign(options, require('@mesh/identity').natsAuthOptionsFromFile(process.env.NATS_CREDS_FILE));
  }
  const nc = await nats.connect(options).catch((err) => fail(`cannot reach NATS at ${options.servers.join(',')}: ${err.message}`));
  const mine = [];
  try {
    const replies = await nc.requestMany(`mesh.api.${service}.health`, nats.JSONCodec().encode({}), {
      maxWait: TIMEOUT_MS,
      strategy: nats.RequestStrategy.Timer,
    });
    for await (const msg of replies) {
      let reply;
      try {
        reply = JSON.parse(Buffer.from(msg.data).toString('utf8'));
      } catch {
        continue;
      }
      const data = reply && reply.ok ? reply.data : undefined;
      if (!data || data.service !== service) continue;
      const isMine =
        service === 'container-manager' && process.env.NODE_ID
          ? data.details && data.details.nodeId === process.env.NODE_ID
          : data.pid === local.pid && data.uptimeMs <= local.ageMs + CLOCK_SLACK_MS && local.ageMs - data.uptimeMs <= STARTUP_MAX_MS;
      if (isMine) {
        mine.push(data);
        break; // the earliest matching reply is enough
      }
    }
  } finally {
    await nc.close();
  }
  if (mine.length === 0) fail(`no health reply from this container's ${service} (pid ${local.pid}) on mesh.api.${service}.health within ${TIMEOUT_MS} ms`);
  const status = mine[0].status;
  if (status === 'ok' || (!ready && status === 'degraded')) return;
  fail(`${service} reports ${status}${mine[0].details ? ` ${JSON.stringify(mine[0].details)}` : ''}`);
}

main().then(
  () => process.exit(0),
  (err) => fail(err instanceof Error ? err.message : String(err)),
);
