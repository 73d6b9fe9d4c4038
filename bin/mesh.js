#!/usr/bin/env node
// The `mesh` command: the compiled CLI when dist/ is fresh (see runtime.js), else the TypeScript
// sources through ts-node, so it works in a fresh clone and while sources are being edited.
const { join } = require('node:path');
const { DIST, ROOT, compiledIsFresh, registerPaths, registerSource } = require('./runtime');
if (compiledIsFresh()) {
  process.env.MESH_RUNTIME = 'compiled';
  registerPaths(DIST);
  require(join(DIST, 'cli', 'main.js'));
} else {
  process.env.MESH_RUNTIME = 'source';
  registerSource();
  require(join(ROOT, 'cli', 'main.ts'));
}
