// How the mesh command and the services it starts run: from the compiled `dist/` when
// `npm run build` has produced it and no source changed since (it is several times faster to
// start), else from the TypeScript sources through ts-node (transpile only). Plain JavaScript: it
// runs before anything can be compiled.
const { existsSync, readdirSync, statSync } = require('node:fs');
const { join } = require('node:path');

const ROOT = join(__dirname, '..');
/** MESH_DIST_DIR: another build folder (the tests build into a temporary one). */
const DIST = process.env.MESH_DIST_DIR || join(ROOT, 'dist');
/** Written by `npm run build` after a successful compile (scripts/build-stamp.js). */
const STAMP = join(DIST, '.build-stamp');
const SOURCE_DIRS = ['apps', 'libs', 'cli'];

/** The newest modification time of a source file under dir (.ts and the files the CLI reads). */
function newestSourceMs(dir) {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.name === 'node_modules' || entry.name.startsWith('.')) continue;
    const path = join(dir, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, newestSourceMs(path));
    else newest = Math.max(newest, statSync(path).mtimeMs);
  }
  return newest;
}

/** True when dist/ holds a successful build newer than every source file (MESH_FROM_SOURCE=1 says no). */
function compiledIsFresh() {
  if (process.env.MESH_FROM_SOURCE || !existsSync(STAMP)) return false;
  const builtMs = statSync(STAMP).mtimeMs;
  return SOURCE_DIRS.every((dir) => !existsSync(join(ROOT, dir)) || newestSourceMs(join(ROOT, dir)) <= builtMs);
}

/** The @mesh/* path aliases of tsconfig.json, resolved under baseUrl (dist/ or the repo root). */
function registerPaths(baseUrl) {
  require('tsconfig-paths').register({ baseUrl, paths: require(join(ROOT, 'tsconfig.json')).compilerOptions.paths });
}

/** Makes `require` of TypeScript sources work (ts-node, transpile only) with the path aliases. */
function registerSource() {
  process.env.TS_NODE_PROJECT = process.env.TS_NODE_PROJECT || join(ROOT, 'tsconfig.json');
  process.env.TS_NODE_TRANSPILE_ONLY = 'true';
  require('ts-node/register/transpile-only');
  registerPaths(ROOT);
}

module.exports = { ROOT, DIST, STAMP, compiledIsFresh, registerPaths, registerSource };
