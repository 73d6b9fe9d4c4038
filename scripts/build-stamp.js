// `npm run build` runs this twice: `--start` before tsc (notes the moment the sources are read),
// then without arguments after tsc succeeded: marks dist/ as a complete build of the sources as
// they were at that start (bin/runtime.js compares the stamp with the newest source file, so a
// source saved while tsc ran still counts as newer than the build).
const { existsSync, mkdirSync, rmSync, statSync, utimesSync, writeFileSync } = require('node:fs');
const { join } = require('node:path');
const { DIST, STAMP } = require('../bin/runtime');

const START = join(DIST, '.build-start');
if (process.argv[2] === '--start') {
  mkdirSync(DIST, { recursive: true });
  writeFileSync(START, `${new Date().toISOString()}\n`);
} else {
  writeFileSync(STAMP, `${new Date().toISOString()}\n`);
  if (existsSync(START)) {
    const started = statSync(START).mtime;
    utimesSync(STAMP, started, started);
    rmSync(START);
  }
}
