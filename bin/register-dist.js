// Preloaded (`node -r`) by the services the mesh command starts from dist/: resolves the @mesh/*
// path aliases of the compiled JavaScript.
const { DIST, registerPaths } = require('./runtime');
registerPaths(DIST);
