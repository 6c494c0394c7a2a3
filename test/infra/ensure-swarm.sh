#!/usr/bin/env bash
# test/infra/ensure-swarm.sh -- the Docker Swarm side of the test machine, made when missing:
#
#   1. a single-node swarm on the shared engine (`docker swarm init --advertise-addr 127.0.0.1`),
#      left active: compose keeps working beside it, and other tests run on the same engine.
#   2. a real image registry on loopback (Debian's `docker-registry`, i.e. distribution 2.8), for the
#      swarm runtime's push-and-pull-by-digest tests. Private config and storage, its own port:
#        /var/lib/release-orchestrator-test/registry/{config.yml,data/,registry.log,registry.pid}
#      The engine trusts 127.0.0.0/8 registries without TLS, so no daemon change is needed.
#
# stdout: one line REGISTRY=127.0.0.1:PORT (progress and errors go to stderr).
# Fast path: swarm active and the registry answering /v2/ -> nothing changes.
# Overrides: RO_TEST_REGISTRY_PORT (default 19350), RO_TEST_REGISTRY_BASE.
# Exit: 0 ready; 1 something could not be set up (the last line says what).
set -euo pipefail
umask 022

readonly PORT="${RO_TEST_REGISTRY_PORT:-19350}"
readonly BASE="${RO_TEST_REGISTRY_BASE:-/var/lib/release-orchestrator-test/registry}"
readonly ADDR="127.0.0.1:$PORT"
say() { echo "[ensure-swarm] $*" >&2; }
die() { echo "[ensure-swarm] ERROR: $*" >&2; exit 1; }

[[ $PORT =~ ^[0-9]{4,5}$ ]] || die "bad RO_TEST_REGISTRY_PORT: $PORT"
timeout 15 docker info >/dev/null 2>&1 || die "no Docker engine answers; run test/infra/ensure-docker.sh first"

exec 9>/run/lock/release-orchestrator-test-swarm.lock
flock -w 120 9 || die "another ensure-swarm.sh holds /run/lock/release-orchestrator-test-swarm.lock"

# ---- 1. swarm -------------------------------------------------------------------
state=$(docker info --format '{{.Swarm.LocalNodeState}}')
case $state in
  active) ;;
  inactive)
    say "docker swarm init --advertise-addr 127.0.0.1"
    docker swarm init --advertise-addr 127.0.0.1 >/dev/null || die "docker swarm init failed"
    ;;
  *) die "swarm is '$state' on this engine: fix it by hand (docker info), this script does not leave a swarm" ;;
esac
[ "$(docker info --format '{{.Swarm.ControlAvailable}}')" = true ] || die "this engine is in a swarm but not a manager: stack deploy needs a manager"

# ---- 2. registry ----------------------------------------------------------------
registry_up() { curl -fsS --max-time 2 "http://$ADDR/v2/" >/dev/null 2>&1; }
if ! registry_up; then
  if ! command -v docker-registry >/dev/null; then
    say "apt-get install -y docker-registry"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y --no-install-recommends docker-registry >/tmp/ensure-swarm-apt.log 2>&1 ||
      { apt-get update >>/tmp/ensure-swarm-apt.log 2>&1 && apt-get install -y --no-install-recommends docker-registry >>/tmp/ensure-swarm-apt.log 2>&1; } ||
      die "apt-get install docker-registry failed; see /tmp/ensure-swarm-apt.log"
    # The package's own service (port 5000) is not ours to run: stop it if the package started it.
    if command -v systemctl >/dev/null && systemctl is-active --quiet docker-registry 2>/dev/null; then
      systemctl disable --now docker-registry >/dev/null 2>&1 || true
    fi
  fi
  mkdir -p "$BASE/data"
  cat >"$BASE/config.yml" <<EOF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $BASE/data
  delete:
    enabled: true
http:
  addr: $ADDR
EOF
  say "starting docker-registry on $ADDR"
  # 9>&-: the registry must not inherit (and so hold for ever) this script's lock.
  setsid nohup docker-registry serve "$BASE/config.yml" >>"$BASE/registry.log" 2>&1 </dev/null 9>&- &
  echo $! >"$BASE/registry.pid"
  for _ in $(seq 1 50); do registry_up && break; sleep 0.2; done
  registry_up || die "docker-registry did not answer on http://$ADDR/v2/; see $BASE/registry.log"
fi
echo "REGISTRY=$ADDR"
