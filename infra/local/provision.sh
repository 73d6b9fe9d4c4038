#!/usr/bin/env bash
# Local infrastructure for mesh on a Debian machine. Safe to run again and again.
#   provision.sh install   install nats-server, docker.io, busybox-static, bash-static when missing
#   provision.sh docker    start dockerd when no engine answers, and build the task base image
#   provision.sh nats-up   start nats-server -js with its store under .data/nats and the generated
#                          authorization block (credentials under .data/secrets/nats/; idempotent)
#   provision.sh nats-down stop that nats-server
#   provision.sh nats-cluster-up N   start N nats-servers (-js) on this machine as one cluster `mesh`
#                          (client ports NATS_PORT+i, cluster ports NATS_CLUSTER_PORT+i, monitoring
#                          NATS_MONITOR_PORT+i, server_name mesh-<i>, stores under .data/nats-cluster/<i>/,
#                          the same generated authorization block; docs/cluster.md)
#   provision.sh nats-cluster-down   stop them
#   provision.sh dockerd-up I   start worker node I's own Docker engine (I in 2..NODES_MAX; node 1 uses the
#                          machine's engine): its own data root, exec root, socket, pidfile and containerd
#                          namespace under .data/nodes/<I>/, no bridge, no iptables rules, and the task base
#                          image copied in (docker save | docker load). Prints its socket (docs/cluster.md)
#   provision.sh dockerd-down I [--purge]   stop it (dockerd stops its containers; they stay for the node to
#                          reconcile); --purge removes its containers and its folder
#   provision.sh up        install + docker + nats-up   (default)
#   provision.sh down      nats-down
#   provision.sh status    what runs and what is missing
# Environment: MESH_DATA_DIR (default <repo>/.data), NATS_PORT (4222), MESH_BASE_IMAGE (mesh/task-base:latest),
#   NATS_MAX_FILE_STORE_BYTES (10737418240 = 10 GiB: JetStream's file store limit, written to .data/nats/nats.conf;
#   `mesh up` gives the same value to the scheduler as STORAGE_CAPACITY_BYTES, see docs/operations.md "Storage limits")
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DATA_DIR="${MESH_DATA_DIR:-$ROOT/.data}"
NATS_PORT="${NATS_PORT:-4222}"
NATS_MONITOR_PORT="${NATS_MONITOR_PORT:-8222}"
NATS_CLUSTER_PORT="${NATS_CLUSTER_PORT:-6222}"
NATS_CLUSTER_SIZE_MAX=5
NATS_MAX_FILE_STORE_BYTES="${NATS_MAX_FILE_STORE_BYTES:-10737418240}"
BASE_IMAGE="${MESH_BASE_IMAGE:-mesh/task-base:latest}"
PACKAGES=(nats-server docker.io busybox-static bash-static)

say() { printf '[provision] %s\n' "$*" >&2; }
die() { printf '[provision] error: %s\n' "$*" >&2; exit 1; }
is_root() { [ "$(id -u)" = 0 ]; }

missing_packages() {
  local missing=()
  command -v nats-server >/dev/null 2>&1 || [ -x /usr/sbin/nats-server ] || missing+=(nats-server)
  command -v dockerd >/dev/null 2>&1 || [ -x /usr/sbin/dockerd ] || missing+=(docker.io)
  [ -x /bin/busybox ] || [ -x /usr/bin/busybox ] || missing+=(busybox-static)
  [ -x /bin/bash-static ] || [ -x /usr/bin/bash-static ] || missing+=(bash-static)
  echo "${missing[@]:-}"
}

cmd_install() {
  local missing; missing="$(missing_packages)"
  if [ -z "$missing" ]; then say "packages present: ${PACKAGES[*]}"; return 0; fi
  if ! is_root; then
    say "missing packages: $missing. Run as root:"
    echo "  sudo apt-get update && sudo apt-get install -y $missing" >&2
    exit 1
  fi
  say "installing: $missing"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
}

docker_answers() { docker info >/dev/null 2>&1; }

cmd_docker() {
  export PATH="$PATH:/usr/sbin:/sbin"
  if ! docker_answers; then
    if ! is_root; then
      say "no Docker engine answers. Start one as root:"
      echo "  sudo dockerd >/var/log/dockerd.log 2>&1 &" >&2
      exit 1
    fi
    say "starting dockerd"
    mkdir -p "$DATA_DIR"
    nohup dockerd >"$DATA_DIR/dockerd.log" 2>&1 &
    for _ in $(seq 1 60); do docker_answers && break; sleep 1; done
    docker_answers || die "dockerd did not answer within 60 s; see $DATA_DIR/dockerd.log"
  fi
  say "docker engine answers ($(docker version --format '{{.Server.Version}}' 2>/dev/null))"
  build_base_image
}

# The task base image: busybox + a static bash, a non-root user 'task' (uid 1000) and /work.
# Built with `docker import` from a root filesystem made here: no registry is needed.
build_base_image() {
  if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then say "base image $BASE_IMAGE present"; return 0; fi
  local busybox bash rootfs
  busybox="$(command -v busybox || echo /bin/busybox)"
  bash="$(command -v bash-static || echo /bin/bash-static)"
  [ -x "$busybox" ] || die "busybox-static is not installed (run: $0 install)"
  [ -x "$bash" ] || die "bash-static is not installed (run: $0 install)"
  rootfs="$(mktemp -d)"
  mkdir -p "$rootfs"/{bin,sbin,usr/bin,usr/sbin,etc,tmp,work,proc,sys,dev,home/task}
  cp "$busybox" "$rootfs/bin/busybox"
  cp "$bash" "$rootfs/bin/bash"
  for applet in $("$busybox" --list); do
    [ "$applet" = bash ] && continue
    [ -e "$rootfs/bin/$applet" ] || ln -s busybox "$rootfs/bin/$applet"
  done
  ln -sf /bin/bash "$rootfs/bin/sh"
  printf 'root:x:0:0:root:/root:/bin/sh\ntask:x:1000:1000:task:/home/task:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$rootfs/etc/passwd"
  printf 'root:x:0:\ntask:x:1000:\nnogroup:x:65534:\n' >"$rootfs/etc/group"
  chmod 1777 "$rootfs/tmp"
  chown 1000:1000 "$rootfs/work" "$rootfs/home/task"
  say "building $BASE_IMAGE with docker import"
  tar -C "$rootfs" -c . | docker import \
    --change 'ENV PATH=/bin:/usr/bin:/sbin:/usr/sbin' \
    --change 'USER 1000:1000' \
    --change 'WORKDIR /work' \
    --change 'CMD ["/bin/sh"]' \
    - "$BASE_IMAGE" >/dev/null
  rm -rf "$rootfs"
  say "base image $BASE_IMAGE built"
}

nats_pidfile() { echo "$DATA_DIR/nats/nats.pid"; }
nats_running() { local pf; pf="$(nats_pidfile)"; [ -f "$pf" ] && kill -0 "$(cat "$pf")" 2>/dev/null; }

cmd_nats_up() {
  export PATH="$PATH:/usr/sbin:/sbin"
  command -v nats-server >/dev/null 2>&1 || die "nats-server is not installed (run: $0 install)"
  if nats_running; then say "nats-server already running (pid $(cat "$(nats_pidfile)"), port $NATS_PORT)"; return 0; fi
  mkdir -p "$DATA_DIR/nats/store"
  case "$NATS_MAX_FILE_STORE_BYTES" in '' | *[!0-9]*) die "NATS_MAX_FILE_STORE_BYTES must be a number of bytes, got '$NATS_MAX_FILE_STORE_BYTES'" ;; esac
  # Identities (docs/security.md): the services', the operator's and the tenants' nkeys under
  # $DATA_DIR/secrets/nats/ (created on the first start, kept after) and the authorization block
  # $DATA_DIR/nats/auth.conf generated from them and libs/contracts/src/permissions.ts. With it the
  # server refuses anonymous connections.
  MESH_DATA_DIR="$DATA_DIR" node "$ROOT/bin/mesh.js" security init >/dev/null || die "could not write the NATS identities (mesh security init)"
  # Everything in the file, nothing in flags: `mesh tenant create` reloads the server (SIGHUP), and a
  # reload re-reads only the file. max_file_store only exists in a config file: JetStream refuses
  # writes beyond it (instead of the disk filling up); the scheduler refuses new work well before
  # (STORAGE_REFUSE_ABOVE_PCT).
  cat >"$DATA_DIR/nats/nats.conf" <<CONF
host: 127.0.0.1
port: $NATS_PORT
http_port: $NATS_MONITOR_PORT
pid_file: "$(nats_pidfile)"
jetstream {
  store_dir: "$DATA_DIR/nats/store"
  max_file_store: $NATS_MAX_FILE_STORE_BYTES
}
include "auth.conf"
CONF
  say "starting nats-server -js on 127.0.0.1:$NATS_PORT with authorization, store $DATA_DIR/nats/store (max_file_store $NATS_MAX_FILE_STORE_BYTES bytes)"
  nohup nats-server -c "$DATA_DIR/nats/nats.conf" >"$DATA_DIR/nats/nats.log" 2>&1 &
  for _ in $(seq 1 50); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$NATS_PORT") 2>/dev/null; then say "nats-server ready"; return 0; fi
    sleep 0.1
  done
  die "nats-server did not listen on $NATS_PORT; see $DATA_DIR/nats/nats.log"
}

cmd_nats_down() {
  if ! nats_running; then say "nats-server not running"; return 0; fi
  local pid; pid="$(cat "$(nats_pidfile)")"
  kill "$pid"
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || { say "nats-server stopped"; return 0; }; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
}

# --- a NATS cluster on this machine (docs/cluster.md) ------------------------------------------------
cluster_dir() { echo "$DATA_DIR/nats-cluster/$1"; }
cluster_pidfile() { echo "$(cluster_dir "$1")/nats.pid"; }
cluster_running() { local pf; pf="$(cluster_pidfile "$1")"; [ -f "$pf" ] && kill -0 "$(cat "$pf")" 2>/dev/null; }
# The servers configured by the last nats-cluster-up (the directories 0..N-1).
cluster_size() { local n=0; while [ -d "$(cluster_dir "$n")" ]; do n=$((n + 1)); done; echo "$n"; }

cmd_nats_cluster_up() {
  local size="${1:-3}"
  case "$size" in '' | *[!0-9]*) die "nats-cluster-up: N must be a number of servers, got '$size'" ;; esac
  [ "$size" -ge 1 ] && [ "$size" -le "$NATS_CLUSTER_SIZE_MAX" ] || die "nats-cluster-up: N must be in 1..$NATS_CLUSTER_SIZE_MAX (3 survives the loss of one), got $size"
  export PATH="$PATH:/usr/sbin:/sbin"
  command -v nats-server >/dev/null 2>&1 || die "nats-server is not installed (run: $0 install)"
  nats_running && die "the single nats-server runs on $NATS_PORT (pid $(cat "$(nats_pidfile)")): stop it first ($0 nats-down)"
  local existing; existing="$(cluster_size)"
  [ "$existing" = 0 ] || [ "$existing" = "$size" ] || die "a cluster of $existing servers is configured under $DATA_DIR/nats-cluster: stop it and remove that folder to change the size"
  case "$NATS_MAX_FILE_STORE_BYTES" in '' | *[!0-9]*) die "NATS_MAX_FILE_STORE_BYTES must be a number of bytes, got '$NATS_MAX_FILE_STORE_BYTES'" ;; esac
  # The same identities and authorization block as the single server (nats-up). Routes authenticate
  # too: each cluster block includes route-auth.conf and each route URL carries the stack's route
  # secret (both written by security init), so a server without it cannot join (docs/cluster.md).
  MESH_DATA_DIR="$DATA_DIR" node "$ROOT/bin/mesh.js" security init >/dev/null || die "could not write the NATS identities (mesh security init)"
  local route_secret; route_secret="$(cat "$DATA_DIR/secrets/nats/route.secret")" || die "no route secret in $DATA_DIR/secrets/nats (mesh security init writes it)"
  local i j routes
  for i in $(seq 0 $((size - 1))); do
    if cluster_running "$i"; then say "mesh-$i already running (pid $(cat "$(cluster_pidfile "$i")"), port $((NATS_PORT + i)))"; continue; fi
    mkdir -p "$(cluster_dir "$i")/store"
    routes=""
    for j in $(seq 0 $((size - 1))); do [ "$j" = "$i" ] || routes="${routes:+$routes, }\"nats-route://mesh-route:$route_secret@127.0.0.1:$((NATS_CLUSTER_PORT + j))\""; done
    # Next to auth.conf: an include is resolved relative to the including file.
    cat >"$DATA_DIR/nats/cluster-$i.conf" <<CONF
server_name: mesh-$i
host: 127.0.0.1
port: $((NATS_PORT + i))
http_port: $((NATS_MONITOR_PORT + i))
pid_file: "$(cluster_pidfile "$i")"
jetstream {
  store_dir: "$(cluster_dir "$i")/store"
  max_file_store: $NATS_MAX_FILE_STORE_BYTES
}
cluster {
  name: mesh
  host: 127.0.0.1
  port: $((NATS_CLUSTER_PORT + i))
  routes: [ $routes ]
  include "route-auth.conf"
}
include "auth.conf"
CONF
    say "starting mesh-$i: client 127.0.0.1:$((NATS_PORT + i)), cluster $((NATS_CLUSTER_PORT + i)), monitoring $((NATS_MONITOR_PORT + i)), store $(cluster_dir "$i")/store"
    nohup nats-server -c "$DATA_DIR/nats/cluster-$i.conf" >"$(cluster_dir "$i")/nats.log" 2>&1 &
  done
  for i in $(seq 0 $((size - 1))); do
    local ready=""
    for _ in $(seq 1 100); do
      if (exec 3<>"/dev/tcp/127.0.0.1/$((NATS_PORT + i))") 2>/dev/null; then ready=1; break; fi
      sleep 0.1
    done
    [ -n "$ready" ] || die "mesh-$i did not listen on $((NATS_PORT + i)); see $(cluster_dir "$i")/nats.log"
  done
  say "nats cluster of $size ready (NATS_URL=$(cluster_urls "$size"))"
}

cluster_urls() {
  local i urls=""
  for i in $(seq 0 $(($1 - 1))); do urls="${urls:+$urls,}nats://127.0.0.1:$((NATS_PORT + i))"; done
  echo "$urls"
}

cmd_nats_cluster_down() {
  local size i pid; size="$(cluster_size)"
  [ "$size" -gt 0 ] || { say "no nats cluster configured"; return 0; }
  for i in $(seq 0 $((size - 1))); do
    if ! cluster_running "$i"; then say "mesh-$i not running"; continue; fi
    pid="$(cat "$(cluster_pidfile "$i")")"
    kill "$pid"
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    say "mesh-$i stopped"
  done
}

# --- worker nodes' own Docker engines (`mesh up --nodes N`, docs/cluster.md "Worker nodes") -----------
NODES_MAX=8
node_dir() { echo "$DATA_DIR/nodes/$1"; }
node_socket() { echo "$(node_dir "$1")/docker.sock"; }
node_pidfile() { echo "$(node_dir "$1")/dockerd.pid"; }
node_running() { local pf; pf="$(node_pidfile "$1")"; [ -f "$pf" ] && kill -0 "$(cat "$pf")" 2>/dev/null; }
node_index() {
  case "${1:-}" in '' | *[!0-9]*) die "$2: I must be a node number in 2..$NODES_MAX, got '${1:-}'" ;; esac
  [ "$1" -ge 2 ] && [ "$1" -le "$NODES_MAX" ] || die "$2: I must be in 2..$NODES_MAX (node 1 runs on the machine's engine), got $1"
}
# containerd namespaces are machine-wide: one per data dir and node, so two stacks (or tests) never share one.
node_namespace() { echo "mesh-node-$1-$(printf '%s' "$DATA_DIR" | cksum | cut -d' ' -f1)"; }

cmd_dockerd_up() {
  node_index "${1:-}" dockerd-up
  local i="$1" dir sock
  export PATH="$PATH:/usr/sbin:/sbin"
  command -v dockerd >/dev/null 2>&1 || die "dockerd is not installed (run: $0 install)"
  is_root || die "dockerd-up needs root (a Docker engine does)"
  dir="$(node_dir "$i")"; sock="$(node_socket "$i")"
  [ "${#sock}" -lt 100 ] || die "the socket path $sock is too long for a unix socket (108 bytes): use a shorter MESH_DATA_DIR"
  if node_running "$i"; then say "node $i's dockerd already running (pid $(cat "$(node_pidfile "$i")"), $sock)"; echo "$sock"; return 0; fi
  mkdir -p "$dir/data" "$dir/exec"
  rm -f "$sock"
  # No bridge and no iptables rules: this engine must not touch the machine's network (the first
  # engine owns it). Task containers run with network `none`; the node registers network=false.
  # In a network namespace of its own: a dockerd started with --bridge=none deletes the interface
  # `docker0` at start, which in the machine's namespace is the first engine's default bridge.
  nohup unshare --net dockerd \
    --data-root="$dir/data" --exec-root="$dir/exec" -H "unix://$sock" --pidfile="$(node_pidfile "$i")" \
    --bridge=none --iptables=false --ip-masq=false \
    --containerd-namespace="$(node_namespace "$i")" --containerd-plugins-namespace="$(node_namespace "$i")-plugins" \
    >"$dir/dockerd.log" 2>&1 &
  local up=""
  for _ in $(seq 1 120); do
    if docker -H "unix://$sock" info >/dev/null 2>&1; then up=1; break; fi
    sleep 0.5
  done
  [ -n "$up" ] || die "node $i's dockerd did not answer within 60 s; see $dir/dockerd.log"
  if ! docker -H "unix://$sock" image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
    docker image inspect "$BASE_IMAGE" >/dev/null 2>&1 || build_base_image
    say "copying $BASE_IMAGE into node $i's engine (docker save | docker load)"
    docker save "$BASE_IMAGE" | docker -H "unix://$sock" load >/dev/null || die "could not load $BASE_IMAGE into node $i's engine"
  fi
  say "node $i's dockerd ready (pid $(cat "$(node_pidfile "$i")"), $sock)"
  echo "$sock"
}

cmd_dockerd_down() {
  node_index "${1:-}" dockerd-down
  local i="$1" dir pid
  dir="$(node_dir "$i")"
  if node_running "$i"; then
    pid="$(cat "$(node_pidfile "$i")")"
    # --purge: its containers go with it (a worker node's engine holds nothing but task containers).
    # Without, they stay (stopped by dockerd) for the node's container-manager to reconcile when it is back.
    if [ "${2:-}" = --purge ]; then
      docker -H "unix://$(node_socket "$i")" ps -aq 2>/dev/null | xargs -r docker -H "unix://$(node_socket "$i")" rm -f >/dev/null 2>&1 || true
    fi
    kill "$pid"
    for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    say "node $i's dockerd stopped"
  else
    say "node $i's dockerd not running"
  fi
  if [ "${2:-}" = --purge ] && [ -d "$dir" ]; then
    # dockerd unmounts its layers on a clean stop; a mount left by a killed one is unmounted first.
    grep -o " $dir/[^ ]*" /proc/mounts 2>/dev/null | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
    rm -rf "$dir" || say "could not remove all of $dir"
    rmdir "$DATA_DIR/nodes" 2>/dev/null || true
  fi
}

cmd_status() {
  local missing; missing="$(missing_packages)"
  echo "packages:   ${missing:+missing: $missing}${missing:-ok}"
  if docker_answers; then echo "docker:     ok"; else echo "docker:     not answering"; fi
  if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then echo "base image: $BASE_IMAGE"; else echo "base image: missing"; fi
  if nats_running; then echo "nats:       running on $NATS_PORT (pid $(cat "$(nats_pidfile)"))"; else echo "nats:       stopped"; fi
  local size i; size="$(cluster_size)"
  for i in $(seq 0 $((size - 1))); do
    if cluster_running "$i"; then echo "nats mesh-$i: running on $((NATS_PORT + i)) (pid $(cat "$(cluster_pidfile "$i")"))"; else echo "nats mesh-$i: stopped"; fi
  done
  for i in $(seq 2 "$NODES_MAX"); do
    [ -d "$(node_dir "$i")" ] || continue
    if node_running "$i"; then echo "node $i dockerd: running (pid $(cat "$(node_pidfile "$i")"), $(node_socket "$i"))"; else echo "node $i dockerd: stopped"; fi
  done
}

case "${1:-up}" in
  install) cmd_install ;;
  docker) cmd_docker ;;
  nats-up) cmd_nats_up ;;
  nats-down) cmd_nats_down ;;
  down) cmd_nats_down; cmd_nats_cluster_down ;;
  nats-cluster-up) cmd_nats_cluster_up "${2:-3}" ;;
  nats-cluster-down) cmd_nats_cluster_down ;;
  up) cmd_install; cmd_docker; cmd_nats_up ;;
  dockerd-up) cmd_dockerd_up "${2:-}" ;;
  dockerd-down) cmd_dockerd_down "${2:-}" "${3:-}" ;;
  status) cmd_status ;;
  -h|--help|help) sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//' ;;
  *) echo "unknown command: $1 (see $0 --help)" >&2; exit 2 ;;
esac
