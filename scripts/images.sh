#!/usr/bin/env bash
# npm run images [-- --rebuild] [-- --base-only]
#
# Builds the service image mesh/service:<version> without a container registry:
#   1. a local Node base image mesh/node-base:20 (skipped when it exists; --rebuild forces it):
#      debootstrap --variant=minbase bookworm (Debian's mirror is reachable) and this machine's
#      /usr/bin/node (Node 20: needs only libc, libstdc++ and libgcc_s, checked with ldd below),
#      then `docker import`; the runtime stage's base;
#   2. mesh/node-build:20: that base plus this machine's npm package, for the build stage
#      (`npm ci`, `npm run build`); the runtime image carries no npm;
#   3. `docker build --build-arg BASE_IMAGE=mesh/node-base:20 --build-arg BUILD_IMAGE=mesh/node-build:20`
#      of the repo's Dockerfile;
#   4. mesh/nats:<major.minor> for the Swarm stack (infra/swarm/nats.Dockerfile): the base plus this
#      machine's nats-server binary (skipped when it exists; --rebuild forces it; --nats-only builds
#      only the images it needs: base and NATS).
# A registry user needs neither: `docker build .` uses node:20-bookworm-slim (docs/deploy.md).
set -euo pipefail

BASE_TAG="${MESH_BASE_IMAGE:-mesh/node-base:20}"
BUILD_TAG="${MESH_BUILD_IMAGE:-mesh/node-build:20}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VERSION="$(node -p "require('$ROOT/package.json').version")"
SERVICE_TAG="${MESH_SERVICE_IMAGE:-mesh/service:$VERSION}"
SUITE="bookworm"
REBUILD=0
BASE_ONLY=0
NATS_ONLY=0
for arg in "$@"; do
  case "$arg" in
    --rebuild) REBUILD=1 ;;
    --base-only) BASE_ONLY=1 ;;
    --nats-only) NATS_ONLY=1 ;;
    *) echo "images: unknown option $arg (known: --rebuild, --base-only, --nats-only)" >&2; exit 2 ;;
  esac
done

step() { printf '\n[images %s] %s\n' "$(date -u +%H:%M:%S)" "$*"; }
elapsed() { echo "$(($(date +%s) - $1)) s"; }

command -v docker >/dev/null || { echo "images: docker is not installed" >&2; exit 1; }

build_base() {
  local node_bin rootfs started
  node_bin="$(readlink -f "$(command -v node)")"
  local node_major
  node_major="$("$node_bin" -p 'process.versions.node.split(".")[0]')"
  [ "$node_major" = "20" ] || { echo "images: the base image wants Node 20, this machine has $("$node_bin" -v)" >&2; exit 1; }
  [ -x /usr/sbin/debootstrap ] || { echo "images: /usr/sbin/debootstrap missing (apt-get install debootstrap)" >&2; exit 1; }
  # Every library node links against must be a Debian package of the rootfs: ldd lists them.
  local libs
  libs="$(ldd "$node_bin" | awk '/=>/ {print $1}' | sort -u | tr '\n' ' ')"
  step "node $("$node_bin" -v) links: $libs"

  rootfs="$(mktemp -d /tmp/mesh-node-base.XXXXXX)"
  trap 'rm -rf "$rootfs"' EXIT
  started=$(date +%s)
  # libstdc++6 is not in minbase (libgcc-s1 and libc6 are); ca-certificates for TLS to NATS/OTLP.
  step "debootstrap --variant=minbase $SUITE (downloads ~40 MB from Debian's mirror; a few minutes)"
  /usr/sbin/debootstrap --variant=minbase --include=libstdc++6,ca-certificates "$SUITE" "$rootfs" \
    | awk '/^I: (Retrieving|Validating|Extracting|Installing|Configuring|Base system)/ { n++; if (n % 25 == 0 || /Base system/) print "  " $0; fflush() }'
  step "debootstrap done in $(elapsed "$started")"

  install -m 0755 "$node_bin" "$rootfs/usr/bin/node"
  # A smaller image: no apt lists, docs, man pages or locales the services never read.
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb \
    "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/locale/* "$rootfs"/usr/share/info/*
  # Checked inside the rootfs, so a missing library fails here and not in the service build.
  chroot "$rootfs" /usr/bin/node -e 'require("node:crypto").randomBytes(1); console.log("  node " + process.version + " runs in the rootfs")'

  step "docker import -> $BASE_TAG"
  tar -C "$rootfs" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["node"]' \
    --message "Debian $SUITE minbase + node $("$node_bin" -v) (scripts/images.sh)" \
    - "$BASE_TAG" >/dev/null
  rm -rf "$rootfs"
  trap - EXIT
  step "base image $BASE_TAG built in $(elapsed "$started"): $(docker image inspect --format '{{.Size}}' "$BASE_TAG") bytes"
}

# The base plus npm, for the build stage only. Its context is this machine's npm package folder.
build_build_image() {
  local npm_dir started
  npm_dir="$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")"
  [ -f "$npm_dir/package.json" ] || { echo "images: npm package folder not found at $npm_dir" >&2; exit 1; }
  started=$(date +%s)
  step "build image $BUILD_TAG: $BASE_TAG + npm $(npm --version) from $npm_dir"
  docker build -q --network host -t "$BUILD_TAG" -f - "$npm_dir" >/dev/null <<DOCKERFILE
FROM $BASE_TAG
COPY . /usr/lib/node_modules/npm
RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/bin/npm && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/bin/npx && npm --version
DOCKERFILE
  step "build image $BUILD_TAG built in $(elapsed "$started")"
}

if [ "$REBUILD" = 1 ] || ! docker image inspect "$BASE_TAG" >/dev/null 2>&1; then
  build_base
  build_build_image
else
  step "base image $BASE_TAG exists (--rebuild to build it again)"
  docker image inspect "$BUILD_TAG" >/dev/null 2>&1 || build_build_image
fi
[ "$BASE_ONLY" = 1 ] && exit 0

# The NATS server of the Swarm stack: the base plus this machine's nats-server (Debian's package;
# it links only libc). Tagged with its major.minor, which infra/swarm/stack.yml names.
build_nats_image() {
  local nats_bin version tag context started
  nats_bin="$(command -v nats-server || echo /usr/sbin/nats-server)"
  [ -x "$nats_bin" ] || { echo "images: nats-server missing (bash infra/local/provision.sh install)" >&2; exit 1; }
  version="$("$nats_bin" --version | sed -E 's/^.*v([0-9]+\.[0-9]+\.[0-9]+).*$/\1/')"
  tag="${MESH_NATS_IMAGE:-mesh/nats:${version%.*}}"
  if [ "$REBUILD" = 0 ] && docker image inspect "$tag" >/dev/null 2>&1; then step "NATS image $tag exists"; return 0; fi
  started=$(date +%s)
  context="$(mktemp -d /tmp/mesh-nats-image.XXXXXX)"
  install -m 0755 "$(readlink -f "$nats_bin")" "$context/nats-server"
  step "NATS image $tag: $BASE_TAG + nats-server $version"
  docker build -q --build-arg "BASE_IMAGE=$BASE_TAG" -t "$tag" -t "mesh/nats:$version" -f "$ROOT/infra/swarm/nats.Dockerfile" "$context" >/dev/null
  rm -rf "$context"
  step "NATS image $tag built in $(elapsed "$started"): $(docker image inspect --format '{{.Size}}' "$tag") bytes"
}
build_nats_image
[ "$NATS_ONLY" = 1 ] && exit 0

# The build stage's npm ci trusts npm's cafile when one is set (a TLS-inspecting proxy here);
# only those stages see it (infra/images/build-ca/README.md).
BUILD_CA="$ROOT/infra/images/build-ca/ca.crt"
CAFILE="$(npm config get cafile 2>/dev/null || true)"
if [ -n "$CAFILE" ] && [ "$CAFILE" != "null" ] && [ -f "$CAFILE" ]; then
  cp "$CAFILE" "$BUILD_CA"
  step "the build stage trusts npm's cafile $CAFILE"
else
  rm -f "$BUILD_CA"
fi

started=$(date +%s)
step "docker build -> $SERVICE_TAG (BASE_IMAGE=$BASE_TAG, BUILD_IMAGE=$BUILD_TAG)"
# --network host: the build stage reaches the npm registry the way this machine does.
docker build --network host --build-arg "BASE_IMAGE=$BASE_TAG" --build-arg "BUILD_IMAGE=$BUILD_TAG" -t "$SERVICE_TAG" -t mesh/service:latest "$ROOT"
step "service image $SERVICE_TAG built in $(elapsed "$started"): $(docker image inspect --format '{{.Size}}' "$SERVICE_TAG") bytes"
