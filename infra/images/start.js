#!/usr/bin/env node
// The service image's entry point: `node infra/images/start.js <service>` or MESH_SERVICE=<service>.
// One image serves all five services (same code, same dependencies: one build, one scan, one tag to
// roll out); the service is chosen here and started the way its main.ts does (runService: SIGTERM
// and SIGINT drain the service, then exit 0; exit 1 if the drain takes over 10 s or fails).
'use strict';
require('./register-paths');
const { join } = require('node:path');

const SERVICES = {
  scheduler: 'SchedulerService',
  'container-manager': 'ContainerManagerService',
  'credit-manager': 'CreditManagerService',
  scaler: 'ScalerService',
  ledger: 'LedgerService',
};
const DIST = process.env.MESH_DIST_DIR || join(__dirname, '..', '..', 'dist');

const service = process.argv[2] || process.env.MESH_SERVICE;
if (!service || !Object.hasOwn(SERVICES, service)) {
  process.stderr.write(
    `start: name the service as the first argument or MESH_SERVICE (one of ${Object.keys(SERVICES).join(', ')}); got ${JSON.stringify(service ?? '')}\n`,
  );
  process.exit(2);
}
const definition = require(join(DIST, 'apps', service, 'src', 'main.js'))[SERVICES[service]];
const { runService } = require(join(DIST, 'libs', 'runtime', 'src'));
// node runs as PID 1, and the kernel applies no default action to a signal PID 1 does not handle:
// until runService has installed its draining handlers (after the start, which can take a log
// catch-up), SIGTERM would be ignored and `docker stop` would wait for its SIGKILL. So until then a
// signal ends the process at once (143 = 128 + SIGTERM, nothing started to drain).
const early = (signal) => {
  process.stderr.write(`start: ${signal} before ${service} was ready: exiting\n`);
  process.exit(signal === 'SIGINT' ? 130 : 143);
};
process.once('SIGTERM', early);
process.once('SIGINT', early);
void runService(definition).then(() => {
  process.off('SIGTERM', early);
  process.off('SIGINT', early);
});
