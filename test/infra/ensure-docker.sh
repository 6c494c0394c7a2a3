#!/usr/bin/env bash
# ensure-docker.sh: make the tested Docker engine and compose available: Engine 26 and the
# Compose v2 plugin, Debian trixie's docker.io / docker-cli / docker-compose packages, on this
# bookworm machine. Idempotent: returns in well under a second when an Engine >= 26 with
# compose already answers.
#
#   bash test/infra/ensure-docker.sh
#
# Cold path (no engine, or an older one that this machine's packages run):
#   1. an apt source for trixie, pinned to priority 100 (below bookworm's 500, so nothing is
#      upgraded to trixie by accident); only docker.io, docker-cli and docker-compose are taken
#      from it, containerd and runc stay bookworm's. A simulated install refuses to go on when
#      apt would take any other package from trixie.
#   2. start dockerd in the background as root, logging to $DOCKERD_LOG, trying flag sets from
#      the most to the least capable until `docker info` answers;
#   3. print one line naming the engine and the compose command(s) that work.
# An engine older than 26 that Debian's docker.io package runs (bookworm's 20.10) is stopped,
# upgraded in place (same data root) and started again. The legacy pair (Engine 20.10 +
# docker-compose 1.29) has its own engine: test/infra/ensure-docker-legacy.sh.
#
# Env: DOCKERD_LOG (default /var/log/dockerd-test.log), DOCKERD_WAIT (seconds to
# wait for each start attempt, default 60).
# Exit: 0 ready; 1 no engine could be made to work (the reason is printed).
set -euo pipefail

LOG=${DOCKERD_LOG:-/var/log/dockerd-test.log}
WAIT=${DOCKERD_WAIT:-60}
PIDFILE=/var/run/docker.pid
export DEBIAN_FRONTEND=noninteractive

say() { echo "[ensure-docker] $*" >&2; }
die() { echo "[ensure-docker] ERROR: $*" >&2; exit 1; }

# the engine answers, through the docker on PATH or docker.io's own client
engine_ok() {
  timeout 15 docker info >/dev/null 2>&1 ||
    { [ -x /usr/bin/docker ] && timeout 15 /usr/bin/docker info >/dev/null 2>&1; }
}

# The docker CLI on PATH may be newer than Debian's engine (20.10, API 1.41);
# the client negotiates the API version down. If it cannot talk to the engine
# at all, fall back to the client that docker.io installs.
pick_client() {
  if timeout 15 docker version >/dev/null 2>&1; then
    DOCKER=$(command -v docker)
  elif [ -x /usr/bin/docker ] && timeout 15 /usr/bin/docker version >/dev/null 2>&1; then
    DOCKER=/usr/bin/docker
    say "WARNING: $(command -v docker || echo docker) cannot talk to the engine; use /usr/bin/docker"
  else
    return 1
  fi
}

# Sets COMPOSE_V2 / COMPOSE_V1 to the version each flavour reports (empty when
# absent). docker-compose v1 is Python and takes ~0.7s to start: call this once.
detect_compose() {
  COMPOSE_V2=$(docker compose version --short 2>/dev/null) || COMPOSE_V2=
  COMPOSE_V1=
  if command -v docker-compose >/dev/null 2>&1; then
    COMPOSE_V1=$(docker-compose version --short 2>/dev/null) || COMPOSE_V1=
  fi
}

report() {
  pick_client || die "the engine answers 'docker info' but 'docker version' fails"
  local sv cv drv compose=()
  sv=$("$DOCKER" version --format '{{.Server.Version}} (API {{.Server.APIVersion}})' 2>/dev/null || echo '?')
  cv=$("$DOCKER" version --format '{{.Client.Version}}' 2>/dev/null || echo '?')
  drv=$("$DOCKER" info --format '{{.Driver}}' 2>/dev/null || echo '?')
  [ -n "${COMPOSE_V2+x}" ] || detect_compose
  [ -z "$COMPOSE_V2" ] || compose+=("'docker compose' $COMPOSE_V2")
  [ -z "$COMPOSE_V1" ] || compose+=("'docker-compose' $COMPOSE_V1")
  [ ${#compose[@]} -gt 0 ] || die "engine is up but no compose command works (neither 'docker compose' nor 'docker-compose')"
  local IFS=,
  echo "[ensure-docker] ready: engine $sv via $DOCKER (client $cv, storage driver $drv); compose: ${compose[*]}"
}

MIN_ENGINE=26
# the major version of the engine that answers (0 when none answers)
engine_major() {
  local v
  v=$(timeout 15 docker version --format '{{.Server.Version}}' 2>/dev/null) || v=0
  echo "${v%%.*}"
}

# ---- fast path ------------------------------------------------------------
if engine_ok && [ "$(engine_major)" -ge $MIN_ENGINE ]; then
  detect_compose
  if [ -n "$COMPOSE_V2" ]; then
    report
    exit 0
  fi
  unset COMPOSE_V2 COMPOSE_V1
fi

[ "$(id -u)" = 0 ] || die "not root and no Docker engine >= $MIN_ENGINE with Compose v2 answers; run as root"

# One installer/starter at a time; whoever waited re-checks: the other may have
# brought the engine up meanwhile.
exec 9>/var/lock/ensure-docker.lock
flock -w 300 9 || die "another ensure-docker.sh holds /var/lock/ensure-docker.lock"
if engine_ok && [ "$(engine_major)" -ge $MIN_ENGINE ] && docker compose version >/dev/null 2>&1; then
  report
  exit 0
fi

dockerd_pid() {
  local p
  [ -s "$PIDFILE" ] || return 1
  p=$(cat "$PIDFILE" 2>/dev/null) || return 1
  [ -n "$p" ] && kill -0 "$p" 2>/dev/null && [ "$(cat /proc/"$p"/comm 2>/dev/null)" = dockerd ] || return 1
  echo "$p"
}

# ---- packages ---------------------------------------------------------------
TRIXIE_SOURCE=/etc/apt/sources.list.d/release-orchestrator-trixie.sources
TRIXIE_PIN=/etc/apt/preferences.d/release-orchestrator-trixie
TRIXIE_PACKAGES=(docker.io/trixie docker-cli/trixie docker-compose/trixie)
# Named so apt keeps bookworm's: a package asked for by /trixie pulls its dependencies from
# trixie too, and these two from bookworm are what Engine 26 needs.
BOOKWORM_PACKAGES=(containerd/bookworm runc/bookworm)

installed_version() { dpkg-query -W -f '${Version}' "$1" 2>/dev/null || true; }

need_packages() {
  local engine compose
  engine=$(installed_version docker.io)
  compose=$(installed_version docker-compose)
  [ "${engine%%.*}" != "" ] && [ "${engine%%.*}" -ge $MIN_ENGINE ] 2>/dev/null || return 0
  [ "${compose%%.*}" = 2 ] || return 0
  return 1
}

add_trixie_source() {
  if [ ! -f "$TRIXIE_SOURCE" ]; then
    cat >"$TRIXIE_SOURCE" <<'SOURCE'
# Added by release-orchestrator's test/infra/ensure-docker.sh: Engine 26 and Compose v2 only.
Types: deb
URIs: http://deb.debian.org/debian
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCE
  fi
  if [ ! -f "$TRIXIE_PIN" ]; then
    cat >"$TRIXIE_PIN" <<'PIN'
# Below bookworm (500): nothing moves to trixie unless it is asked for by name (pkg/trixie).
Package: *
Pin: release n=trixie
Pin-Priority: 100
PIN
  fi
}

if need_packages; then
  add_trixie_source
  if ! apt-cache policy docker.io 2>/dev/null | grep -q ' 26\.'; then
    say "apt-get update (apt does not know trixie's docker.io yet)"
    apt-get update >/tmp/ensure-docker-apt-update.log 2>&1 ||
      say "apt-get update reported errors (unreachable extra repos?); trying the install anyway; see /tmp/ensure-docker-apt-update.log"
  fi
  # What apt would take from trixie (Debian 13), refused when it is more than the three packages.
  plan=$(apt-get install -s --no-install-recommends "${TRIXIE_PACKAGES[@]}" "${BOOKWORM_PACKAGES[@]}" 2>&1) ||
    die "apt cannot install ${TRIXIE_PACKAGES[*]}: $(echo "$plan" | grep '^E:' | head -n 1)"
  extra=$(echo "$plan" | awk '/^Inst / && /Debian:13/ { print $2 }' | grep -vxE 'docker\.io|docker-cli|docker-compose' || true)
  [ -z "$extra" ] || die "apt would also take these from trixie: ${extra//$'\n'/ }; refusing (only docker.io, docker-cli and docker-compose may come from trixie)"
  # An older engine of Debian's package is stopped for the upgrade; its data root is kept.
  if pid=$(dockerd_pid); then
    say "stopping dockerd $(timeout 15 docker version --format '{{.Server.Version}}' 2>/dev/null || echo '?') (pid $pid) to upgrade it"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$PIDFILE"
  fi
  say "apt-get install -y ${TRIXIE_PACKAGES[*]} ${BOOKWORM_PACKAGES[*]} (log /tmp/ensure-docker-apt-install.log)"
  if ! apt-get install -y --no-install-recommends "${TRIXIE_PACKAGES[@]}" "${BOOKWORM_PACKAGES[@]}" >/tmp/ensure-docker-apt-install.log 2>&1; then
    # a stale list gives 404s: refresh once and retry
    say "install failed; apt-get update and retry"
    apt-get update >/tmp/ensure-docker-apt-update.log 2>&1 || true
    apt-get install -y --no-install-recommends "${TRIXIE_PACKAGES[@]}" "${BOOKWORM_PACKAGES[@]}" >/tmp/ensure-docker-apt-install.log 2>&1 ||
      die "apt-get install ${TRIXIE_PACKAGES[*]} failed; see /tmp/ensure-docker-apt-install.log"
  fi
fi
command -v dockerd >/dev/null 2>&1 || die "dockerd not found after installing docker.io"
if engine_ok && [ "$(engine_major)" -lt $MIN_ENGINE ]; then
  die "an engine older than $MIN_ENGINE answers on the default socket and was not started by Debian's docker.io (pid file $PIDFILE): stop it and rerun"
fi

# ---- engine -----------------------------------------------------------------
# wait_engine PID: 0 when docker info answers, 1 when PID died or time ran out
wait_engine() {
  local pid=$1 i
  for ((i = 0; i < WAIT * 2; i++)); do
    engine_ok && return 0
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.5
  done
  return 1
}

# A dockerd we (or someone) started may still be coming up: give it time first.
if pid=$(dockerd_pid); then
  say "dockerd already running (pid $pid); waiting for it"
  if wait_engine "$pid"; then report; exit 0; fi
  die "dockerd (pid $pid) runs but 'docker info' does not answer after ${WAIT}s; see $LOG (stop it and rerun)"
fi

# Flag sets, most capable first. vfs is slow and big but needs no overlay
# support; without iptables, ports published on 127.0.0.1 still work through
# docker-proxy (the userland proxy), which is all the tests need; compose makes
# its own bridge network per project, so even --bridge=none serves compose.
# (On this machine kind every set works; the defaults are taken.)
attempts=(
  ""
  "--storage-driver=vfs"
  "--iptables=false --ip6tables=false"
  "--storage-driver=vfs --iptables=false --ip6tables=false"
  "--storage-driver=vfs --iptables=false --ip6tables=false --bridge=none"
)
touch "$LOG"
for flags in "${attempts[@]}"; do
  # shellcheck disable=SC2086
  set -- $flags
  {
    echo
    echo "=== $(date -u +%FT%TZ) ensure-docker: dockerd $* ==="
  } >>"$LOG"
  say "starting dockerd ${flags:-(default flags)} (log $LOG)"
  # setsid: the daemon survives the caller's session; 9>&-: it must not hold the lock
  setsid nohup dockerd "$@" >>"$LOG" 2>&1 </dev/null 9>&- &
  pid=$!
  if wait_engine "$pid"; then
    echo "dockerd $flags" >/var/run/dockerd-test.flags
    report
    exit 0
  fi
  say "dockerd ${flags:-(default flags)} did not come up; last log lines:"
  tail -n 5 "$LOG" | sed 's/^/    /' >&2
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$PIDFILE"
done
die "no dockerd flag set worked; see $LOG"
