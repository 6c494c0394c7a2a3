#!/usr/bin/env bash
# ensure-docker-legacy.sh: the legacy pair, Engine 20.10 + docker-compose 1.29 (Debian bookworm's
# docker.io and docker-compose), as a second engine beside the tested default (Engine 26 + Compose
# v2, test/infra/ensure-docker.sh). Made when missing, fast when it answers.
#
#   bash test/infra/ensure-docker-legacy.sh      # stdout: the environment of the legacy flavour
#
# Both flavours cannot be installed as Debian packages at once (same package names), so bookworm's
# two .debs are unpacked into $LEGACY_ROOT (dpkg-deb -x) and run from there; docker-compose 1.29
# runs on the system's Python 3 with its bookworm python3-* dependencies installed by apt.
# The engine runs in a network namespace of its own ($LEGACY_NETNS): its bridge, iptables rules,
# swarm ports and published ports never meet the default engine's, so both can run at once. Its
# own socket, data root, exec root and containerd namespace; the test images are copied into it
# from the default engine; it is a single-node swarm with its own loopback registry, as the
# default engine is (test/infra/ensure-swarm.sh, run inside the namespace).
#
# stdout, one KEY=VALUE a line (what test/run-suites.mjs runs the legacy pass with):
#   DOCKER_HOST, LEGACY_NETNS, LEGACY_BIN (first on PATH: dockerd, docker, docker-compose 1.29)
# Env: LEGACY_ROOT (default /opt/release-orchestrator-tests/docker-20.10), LEGACY_NETNS
# (default ro-legacy), LEGACY_STATE (default /var/lib/release-orchestrator-test/docker-20.10).
# Exit: 0 ready; 1 it could not be made (the last line says why).
set -euo pipefail
umask 022

ROOT=${LEGACY_ROOT:-/opt/release-orchestrator-tests/docker-20.10}
NETNS=${LEGACY_NETNS:-ro-legacy}
STATE=${LEGACY_STATE:-/var/lib/release-orchestrator-test/docker-20.10}
RUN=/run/release-orchestrator-test/docker-20.10
SOCK=$RUN/docker.sock
BIN=$ROOT/bin
IMAGES=(local/testsvc:1 local/testsvc:2 local/testpg:15 local/edge-haproxy:bookworm)
# docker-compose 1.29's Depends in bookworm, and the library bookworm's dockerd links against.
LEGACY_DEPS=(python3-distro python3-docker python3-dockerpty python3-docopt python3-dotenv python3-jsonschema
  python3-requests python3-texttable python3-websocket python3-yaml python3-distutils libdevmapper1.02.1 tini)
export DEBIAN_FRONTEND=noninteractive

say() { echo "[ensure-docker-legacy] $*" >&2; }
die() { echo "[ensure-docker-legacy] ERROR: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root (it starts a dockerd in a network namespace)"

in_netns() { nsenter --net="/run/netns/$NETNS" "$@"; }
legacy_docker() { DOCKER_HOST=unix://$SOCK "$BIN/docker" "$@"; }
engine_ok() { [ -e "/run/netns/$NETNS" ] && timeout 15 env DOCKER_HOST="unix://$SOCK" "$BIN/docker" version --format '{{.Server.Version}}' 2>/dev/null | grep -q '^20\.10\.'; }

exec 9>/run/lock/release-orchestrator-test-docker-legacy.lock
flock -w 300 9 || die "another ensure-docker-legacy.sh holds /run/lock/release-orchestrator-test-docker-legacy.lock"

# ---- 1. the binaries ------------------------------------------------------------
if [ ! -x "$BIN/docker-compose" ] || [ ! -x "$ROOT/usr/sbin/dockerd" ]; then
  missing=()
  for p in "${LEGACY_DEPS[@]}"; do dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p"); done
  if [ ${#missing[@]} -gt 0 ]; then
    say "apt-get install -y ${missing[*]} (log /tmp/ensure-docker-legacy-apt.log)"
    apt-get install -y --no-install-recommends "${missing[@]}" >/tmp/ensure-docker-legacy-apt.log 2>&1 ||
      { apt-get update >>/tmp/ensure-docker-legacy-apt.log 2>&1 && apt-get install -y --no-install-recommends "${missing[@]}" >>/tmp/ensure-docker-legacy-apt.log 2>&1; } ||
      die "apt-get install ${missing[*]} failed; see /tmp/ensure-docker-legacy-apt.log"
  fi
  debs=$(mktemp -d)
  chmod 0755 "$debs" # apt's download user writes here
  say "apt-get download docker.io/bookworm docker-compose/bookworm, unpacked into $ROOT"
  (cd "$debs" && apt-get download docker.io/bookworm docker-compose/bookworm >/tmp/ensure-docker-legacy-download.log 2>&1) ||
    die "apt-get download of bookworm's docker.io and docker-compose failed; see /tmp/ensure-docker-legacy-download.log"
  rm -rf "$ROOT.new"
  mkdir -p "$ROOT.new/bin"
  for deb in "$debs"/*.deb; do dpkg-deb -x "$deb" "$ROOT.new"; done
  rm -rf "$debs"
  for tool in dockerd docker-proxy; do ln -s "../usr/sbin/$tool" "$ROOT.new/bin/$tool"; done
  ln -s ../usr/bin/docker "$ROOT.new/bin/docker"
  ln -s "$(command -v tini-static || echo /usr/bin/tini-static)" "$ROOT.new/bin/docker-init"
  # The package's entry script finds itself through its egg-info; the module is what it runs.
  cat >"$ROOT.new/bin/docker-compose" <<EOF
#!/bin/sh
# docker-compose 1.29 from bookworm's package, unpacked in $ROOT; the system's Python 3.
PYTHONPATH=$ROOT/usr/lib/python3/dist-packages exec /usr/bin/python3 -c 'import sys; from compose.cli.main import main; sys.argv[0] = "docker-compose"; sys.exit(main())' "\$@"
EOF
  chmod 0755 "$ROOT.new/bin/docker-compose"
  rm -rf "$ROOT"
  mv "$ROOT.new" "$ROOT"
fi
"$BIN/docker-compose" version --short 2>/dev/null | grep -q '^1\.29\.' || die "$BIN/docker-compose does not run as 1.29; see: $BIN/docker-compose version"

# ---- 2. the engine, in its own network namespace ----------------------------------
if ! engine_ok; then
  if [ ! -e "/run/netns/$NETNS" ]; then
    ip netns add "$NETNS"
    in_netns ip link set lo up
  fi
  if [ -s "$RUN/docker.pid" ] && kill -0 "$(cat "$RUN/docker.pid")" 2>/dev/null; then
    kill "$(cat "$RUN/docker.pid")" 2>/dev/null || true
    sleep 2
  fi
  mkdir -p "$RUN" "$STATE"
  say "starting dockerd 20.10 in network namespace $NETNS on $SOCK (log $STATE/dockerd.log)"
  # setsid: the daemon outlives this script; 9>&-: it must not hold the lock.
  PATH=$BIN:$PATH setsid nohup nsenter --net="/run/netns/$NETNS" "$BIN/dockerd" \
    --host "unix://$SOCK" --data-root "$STATE/data" --exec-root "$RUN/exec" --pidfile "$RUN/docker.pid" \
    --containerd-namespace ro-legacy --containerd-plugins-namespace ro-legacy-plugins \
    >>"$STATE/dockerd.log" 2>&1 </dev/null 9>&- &
  for _ in $(seq 1 120); do engine_ok && break; sleep 0.5; done
  engine_ok || { tail -n 5 "$STATE/dockerd.log" >&2; die "dockerd 20.10 did not answer on $SOCK; see $STATE/dockerd.log"; }
fi

# ---- 3. the test images, copied from the default engine -------------------------------
for image in "${IMAGES[@]}"; do
  want=$(docker image inspect --format '{{.Id}}' "$image" 2>/dev/null) || die "the default engine has no $image: run test/infra/ensure-all.sh first"
  have=$(legacy_docker image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)
  if [ "$want" != "$have" ]; then
    say "copying $image into the legacy engine"
    docker save "$image" | legacy_docker load >/dev/null || die "copying $image into the legacy engine failed"
  fi
done

# ---- 4. a single-node swarm with its own registry, inside the namespace -----------------
PATH=$BIN:$PATH DOCKER_HOST=unix://$SOCK RO_TEST_REGISTRY_BASE=/var/lib/release-orchestrator-test/registry-legacy \
  in_netns bash "$(dirname "$0")/ensure-swarm.sh" >/dev/null 9>&-

echo "DOCKER_HOST=unix://$SOCK"
echo "LEGACY_NETNS=$NETNS"
echo "LEGACY_BIN=$BIN"
say "ready: engine $(legacy_docker version --format '{{.Server.Version}}') in network namespace $NETNS on $SOCK; compose: 'docker-compose' $("$BIN/docker-compose" version --short)"
