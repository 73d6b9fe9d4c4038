// Run by `npm run build` after tsc succeeded: marks dist/ as a complete build of the sources as
// they are now (bin/runtime.js compares it with the newest source file).
const { writeFileSync } = require('node:fs');
const { STAMP } = require('../bin/runtime');
writeFileSync(STAMP, `${new Date().toISOString()}\n`);
