#!/usr/bin/env node
// The `mesh` command. Runs the compiled CLI when `npm run build` has produced it, else the
// TypeScript sources through ts-node (transpile only), so `npx mesh` works in a fresh clone.
const { existsSync } = require('node:fs');
const { join } = require('node:path');
const root = join(__dirname, '..');
const compiled = join(root, 'dist', 'cli', 'main.js');
if (existsSync(compiled) && !process.env.MESH_FROM_SOURCE) {
  require(compiled);
} else {
  process.env.TS_NODE_PROJECT = process.env.TS_NODE_PROJECT || join(root, 'tsconfig.json');
  process.env.TS_NODE_TRANSPILE_ONLY = 'true';
  require('ts-node/register/transpile-only');
  require('tsconfig-paths').register({ baseUrl: root, paths: require(join(root, 'tsconfig.json')).compilerOptions.paths });
  require(join(root, 'cli', 'main.ts'));
}
