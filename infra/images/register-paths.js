// Preloaded by start.js in the service image: resolves the @mesh/<lib>[/<path>] aliases of the
// compiled JavaScript to /app/dist/libs/<lib>/src[/<path>]. bin/register-dist.js does the same
// through tsconfig-paths, a devDependency the production image does not ship (better in the code:
// a tsc step that rewrites the aliases, or package.json "imports", so dist/ runs on its own).
'use strict';
const Module = require('node:module');
const { readdirSync } = require('node:fs');
const { join } = require('node:path');

const DIST = process.env.MESH_DIST_DIR || join(__dirname, '..', '..', 'dist');
// Every compiled lib (a fixed list missed @mesh/identity when it was added).
const LIBS = new Set(
  readdirSync(join(DIST, 'libs'), { withFileTypes: true })
    .filter((d) => d.isDirectory())
    .map((d) => d.name),
);
const ALIAS = /^@mesh\/([a-z-]+)(\/.*)?$/;

const resolve = Module._resolveFilename;
Module._resolveFilename = function resolveMeshAlias(request, ...rest) {
  const match = ALIAS.exec(request);
  if (match && LIBS.has(match[1])) return resolve.call(this, join(DIST, 'libs', match[1], 'src') + (match[2] ?? ''), ...rest);
  return resolve.call(this, request, ...rest);
};
