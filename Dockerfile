# The mesh services: one image for all five (infra/images/start.js picks one by argument or
# MESH_SERVICE). docs/deploy.md explains the choices; `npm run images` builds it here without a
# registry (scripts/images.sh), a registry user runs `docker build .`.
# BASE_IMAGE: the runtime stage's base; BUILD_IMAGE: the build stage's, which needs npm (the same
# image for a registry user; scripts/images.sh builds both locally, npm only in the build one).
ARG BASE_IMAGE=node:20-bookworm-slim
ARG BUILD_IMAGE=node:20-bookworm-slim

# --- compile: every dependency, npm run build -> dist/, then the devDependencies pruned ---
FROM ${BUILD_IMAGE} AS build
WORKDIR /app
ENV NPM_CONFIG_UPDATE_NOTIFIER=false
COPY infra/images/build-ca/ /tmp/build-ca/
COPY package.json package-lock.json ./
# --ignore-scripts: no dependency runs install scripts in the image build. The build CA (if any,
# infra/images/build-ca/README.md) is trusted by this stage only.
RUN if [ -s /tmp/build-ca/ca.crt ]; then export NODE_EXTRA_CA_CERTS=/tmp/build-ca/ca.crt; fi; \
    npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY bin ./bin
COPY scripts/build-stamp.js ./scripts/build-stamp.js
COPY libs ./libs
COPY apps ./apps
COPY cli ./cli
# Only the production dependencies stay (TypeScript, Jest, ESLint... removed; no download).
RUN npm run build && find dist -name '*.map' -delete \
    && npm prune --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force

# --- runtime ---
FROM ${BASE_IMAGE} AS runtime
# npm is not needed to run a service: removed (node:20-bookworm-slim ships it; the local base does not).
RUN rm -rf /usr/local/lib/node_modules/npm /usr/local/bin/npm /usr/local/bin/npx /usr/lib/node_modules/npm /usr/bin/npm /usr/bin/npx /opt/yarn* /usr/local/bin/yarn /usr/local/bin/yarnpkg
WORKDIR /app
ENV NODE_ENV=production \
    MESH_RUNTIME=compiled \
    HOME=/tmp
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
COPY infra/images/register-paths.js infra/images/start.js infra/images/healthcheck.js ./infra/images/
# A numeric uid/gid (no passwd entry needed; Kubernetes' runAsNonRoot can verify a numeric USER).
# The working directory's .data/ (the ledger's default MAC key folder) is writable by it; in a
# cluster the key comes from a Secret file instead (LEDGER_MAC_KEY_FILE).
RUN mkdir -p /app/.data && chown 10001:10001 /app/.data
USER 10001:10001
# node is PID 1 and handles SIGTERM itself (runService: drain, exit 0); the services start no child
# processes, so nothing needs reaping (`docker run --init` adds tini if one is ever wanted).
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "/app/infra/images/healthcheck.js"]
ENTRYPOINT ["node", "/app/infra/images/start.js"]
