#!/usr/bin/env bash
# Runs before `npm test` (npm's pretest): what the integration tests need on this machine.
# Tests start their own nats-server on free ports; they need the binary, a Docker engine and the
# task base image. Idempotent and quick when everything is there.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
if [ ! -d "$ROOT/node_modules/jest" ]; then (cd "$ROOT" && npm ci --no-audit --no-fund); fi
bash "$ROOT/infra/local/provision.sh" install
bash "$ROOT/infra/local/provision.sh" docker
