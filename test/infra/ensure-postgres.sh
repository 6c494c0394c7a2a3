#!/usr/bin/env bash
# test/infra/ensure-postgres.sh -- idempotently provide a dedicated PostgreSQL 15 test cluster.
#
# Not the system "main" cluster: a private cluster made with initdb, owned by the postgres user,
# listening on 127.0.0.1:55432 only (TCP: scram-sha-256), its unix socket in a private folder.
#
#   /var/lib/release-orchestrator-test/             root:postgres 0750
#     pg/             PGDATA                         postgres 0700
#     run/            unix socket (peer auth, postgres only)  postgres 0700
#     postgres.log    server log (pg_ctl -l)         postgres 0600
#     ensure.log      this script's apt/initdb/pg_ctl output  root 0600
#     pgpass          .pgpass for ro_admin           0600 -- the ONLY place the password lives
#
# stdout: only these KEY=VALUE lines (progress and errors go to stderr):
#   PGPASSFILE=/var/lib/release-orchestrator-test/pgpass
#   DATABASE_URL=postgres://ro_admin@127.0.0.1:55432/postgres
#   PG_BINDIR=/usr/lib/postgresql/15/bin
# The password is never printed and never on a command line.
#
# Fast path: when the server answers and ro_admin logs in with the pgpass file, nothing changes
# (drift in the managed config is then ignored; `--full` skips the fast path).
# Otherwise (needs root): install the packages if missing (apt-get update only if the install
# cannot be done without it), initdb if the cluster is missing, (re)write the managed config,
# start (or reload/restart) the server, ensure the role, its password and the pgpass file.
#
# Overrides (optional): RO_TEST_PG_BASE (default /var/lib/release-orchestrator-test),
#                       RO_TEST_PG_PORT (default 55432).
set -euo pipefail
umask 077
cd /

readonly PG_MAJOR=15                       # bookworm's `postgresql` = postgresql-15
readonly PGBIN="/usr/lib/postgresql/$PG_MAJOR/bin"
readonly BASE="${RO_TEST_PG_BASE:-/var/lib/release-orchestrator-test}"
readonly PORT="${RO_TEST_PG_PORT:-55432}"
readonly HOST=127.0.0.1
readonly ROLE=ro_admin
readonly DATADIR="$BASE/pg"
readonly NEWDIR="$BASE/pg.initdb"          # initdb goes here, then one rename to $DATADIR
readonly SOCKDIR="$BASE/run"
readonly PGLOG="$BASE/postgres.log"
readonly ELOG="$BASE/ensure.log"
readonly PGPASS="$BASE/pgpass"
readonly CONF_NAME=release-orchestrator-test.conf
readonly URL="postgres://$ROLE@$HOST:$PORT/postgres"
readonly LOCK="/run/lock/release-orchestrator-test-pg-$PORT.lock"
T0=$(date +%s.%N); readonly T0

[[ $BASE =~ ^/[A-Za-z0-9._/-]+$ && $BASE != / ]] || { echo "ensure-postgres: bad RO_TEST_PG_BASE" >&2; exit 2; }
[[ $PORT =~ ^[0-9]{4,5}$ ]] || { echo "ensure-postgres: bad RO_TEST_PG_PORT" >&2; exit 2; }

# The caller's libpq environment (PGHOST, PGUSER, PGSERVICE, PGOPTIONS, ...) must not leak in.
while read -r v; do unset "$v"; done < <(compgen -e | grep '^PG' || true)

log() { printf 'ensure-postgres: %s\n' "$*" >&2; }
die() {
  log "ERROR: $*"
  [[ -f $ELOG ]] && log "script log: $ELOG"
  [[ -f $PGLOG ]] && log "server log: $PGLOG"
  exit 1
}
elapsed() { awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2fs", b - a }'; }
emit() {
  printf 'PGPASSFILE=%s\nDATABASE_URL=%s\nPG_BINDIR=%s\n' "$PGPASS" "$URL" "$PGBIN"
  log "$1 in $(elapsed): $URL (password only in $PGPASS)"
}
# Commands run as postgres. They keep fd 9 (our flock): an initdb orphaned by a kill -9 of this
# script keeps the lock until it ends, so the next run cannot race it.
as_pg() { runuser -u postgres -- "$@"; }
# Run "$@" with only fds 0-2 open: whatever may leave a daemon behind (pg_ctl start, apt-get
# starting services) must not hold our lock or a caller's pipe open (a caller waiting for EOF).
detached() {
  (
    for fd in /proc/"$BASHPID"/fd/*; do
      fd=${fd##*/}
      if ((fd > 2)); then eval "exec $fd>&-" 2>/dev/null || true; fi
    done
    exec "$@"
  )
}
elog() { printf '\n== %s %s\n' "$(date -u +%FT%TZ)" "$*" >>"$ELOG"; }

# PW := the password stored in the pgpass file for this host/port/role (returns 1 if none).
read_password() {
  PW=""
  [[ -f $PGPASS ]] || return 1
  local line prefix="$HOST:$PORT:*:$ROLE:"
  while IFS= read -r line || [[ -n $line ]]; do
    if [[ $line == "$prefix"* ]]; then PW=${line#"$prefix"}; break; fi
  done <"$PGPASS"
  [[ $PW =~ ^[A-Za-z0-9]{16,}$ ]]
}

can_login() {
  [[ -x $PGBIN/psql && -x $PGBIN/pg_isready && -r $PGPASS ]] || return 1
  "$PGBIN/pg_isready" -q -h "$HOST" -p "$PORT" -t 3 || return 1
  [[ "$(PGPASSFILE=$PGPASS PGCONNECT_TIMEOUT=5 "$PGBIN/psql" -X -w -A -t -q \
        -h "$HOST" -p "$PORT" -U "$ROLE" -d postgres -c 'select 1' 2>/dev/null)" == 1 ]]
}

FULL=0
case "${1:-}" in
  "") ;;
  --full) FULL=1 ;;   # skip the fast path: re-assert config, role and password even when it answers
  *) echo "usage: $0 [--full]" >&2; exit 2 ;;
esac

# ---------------------------------------------------------------------------- fast path
if ((!FULL)) && can_login; then emit "already running"; exit 0; fi

[[ $EUID -eq 0 ]] || die "no usable server/pgpass for $(id -un) (is $PGPASS readable?); setting it up needs root"
mkdir -p /run/lock
exec 9>"$LOCK"
flock -w 600 9 || die "could not take $LOCK within 600s"
if ((!FULL)) && can_login; then emit "ready (set up by a concurrent run)"; exit 0; fi

mkdir -p "$BASE"
touch "$ELOG"; chmod 0600 "$ELOG"

# ---------------------------------------------------------------------------- packages
need_install() {
  local b
  for b in initdb pg_ctl postgres pgbench psql pg_dump pg_restore pg_isready; do
    [[ -x $PGBIN/$b ]] || return 0
  done
  getent passwd postgres >/dev/null || return 0
  return 1
}
apt_install() {
  elog "apt-get install postgresql postgresql-contrib"
  detached env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    -o DPkg::Lock::Timeout=300 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
    postgresql postgresql-contrib >>"$ELOG" 2>&1
}
if need_install; then
  log "installing postgresql (server, contrib, pgbench) ..."
  policy=$(apt-cache policy "postgresql-$PG_MAJOR" 2>/dev/null || true)
  if ! { [[ $policy == *"Candidate: "[0-9]* ]] && apt_install; }; then
    log "apt-get update ..."
    elog "apt-get update"
    detached env DEBIAN_FRONTEND=noninteractive apt-get update -q -o DPkg::Lock::Timeout=300 >>"$ELOG" 2>&1 \
      || log "apt-get update reported errors (some source unreachable?); trying the install anyway"
    apt_install || die "apt-get install postgresql failed"
  fi
  need_install && die "packages installed but $PGBIN or the postgres user is still missing"
fi

# ---------------------------------------------------------------------------- folders
install -d -m 0750 -o root -g postgres "$BASE"
install -d -m 0700 -o postgres -g postgres "$SOCKDIR"
[[ -f $PGLOG ]] || install -m 0600 -o postgres -g postgres /dev/null "$PGLOG"

# Is $1 a live (not zombie) postgres process of our cluster? (Its cwd is the data dir, also after
# the folder was wiped under it: "<dir> (deleted)".)
is_ours() {
  local stat cwd
  [[ $1 =~ ^[0-9]+$ ]] || return 1
  { read -r stat <"/proc/$1/stat"; } 2>/dev/null || return 1
  [[ $stat == "$1 (postgres) "[^Z]* ]] || return 1
  cwd=$(readlink "/proc/$1/cwd" 2>/dev/null) || return 1
  [[ $cwd == "$DATADIR" || $cwd == "$DATADIR (deleted)" ]]
}
ours() {  # all live processes of our cluster (postmaster and children)
  local p
  for p in /proc/[0-9]*; do
    if is_ours "${p#/proc/}"; then echo "${p#/proc/}"; fi
  done
}
# Stop processes of our cluster that no valid postmaster.pid points to: a postmaster whose folder
# was wiped, or children left over by a postmaster killed with -9.
stop_orphans() {
  local pids sig
  pids=$(ours)
  [[ -n $pids ]] || return 0
  log "stopping orphaned server processes of $DATADIR: ${pids//$'\n'/ }"
  for sig in INT QUIT KILL; do   # postmaster: fast, then immediate shutdown
    # shellcheck disable=SC2086
    kill -s "$sig" $pids 2>/dev/null || true
    for _ in $(seq 50); do
      [[ -z $(ours) ]] && return 0
      sleep 0.2
    done
    pids=$(ours)
  done
  die "orphaned server processes did not exit: $pids"
}

# write stdin to $1 (owned by postgres, 0600) if the content differs; returns 0 if it changed
write_if_changed() {
  local dest=$1 tmp
  tmp=$(mktemp "$dest.XXXXXX")
  cat >"$tmp"
  if [[ -f $dest ]] && cmp -s "$tmp" "$dest"; then rm -f "$tmp"; return 1; fi
  chown postgres:postgres "$tmp"; chmod 0600 "$tmp"; mv -f "$tmp" "$dest"
}
CONF_CHANGED=0
HBA_CHANGED=0
configure() {  # $1 = data dir
  local d=$1
  grep -qxF "include = '$CONF_NAME'" "$d/postgresql.conf" ||
    printf "\n# added by test/infra/ensure-postgres.sh\ninclude = '%s'\n" "$CONF_NAME" >>"$d/postgresql.conf"
  if write_if_changed "$d/$CONF_NAME" <<EOF
# Managed by test/infra/ensure-postgres.sh; rewritten on every full run.
listen_addresses = '$HOST'
port = $PORT
unix_socket_directories = '$SOCKDIR'
unix_socket_permissions = 0700
password_encryption = 'scram-sha-256'
ssl = off
max_connections = 100
synchronous_commit = off
log_line_prefix = '%m [%p] %q%u@%d '
EOF
  then CONF_CHANGED=1; fi
  if write_if_changed "$d/pg_hba.conf" <<EOF
# Managed by test/infra/ensure-postgres.sh; rewritten on every full run.
# TYPE  DATABASE     USER      ADDRESS        METHOD
local   all          postgres                 peer
local   all          all                      scram-sha-256
host    all          all       $HOST/32   scram-sha-256
host    replication  all       $HOST/32   scram-sha-256
EOF
  then HBA_CHANGED=1; fi
}

# ---------------------------------------------------------------------------- cluster
if [[ ! -s $DATADIR/PG_VERSION ]]; then
  stop_orphans
  if [[ -d $DATADIR && -n $(ls -A "$DATADIR") ]]; then
    log "removing incomplete cluster folder $DATADIR"
    rm -rf -- "$DATADIR"
  fi
  log "initdb $DATADIR ..."
  rm -rf -- "$NEWDIR"
  install -d -m 0700 -o postgres -g postgres "$NEWDIR"
  elog "initdb $NEWDIR"
  as_pg "$PGBIN/initdb" -D "$NEWDIR" -U postgres -E UTF8 --locale=C.UTF-8 \
    --auth-local=peer --auth-host=scram-sha-256 --no-instructions >>"$ELOG" 2>&1 ||
    die "initdb failed"
  configure "$NEWDIR"
  rm -rf -- "$DATADIR"
  mv -- "$NEWDIR" "$DATADIR"
  CONF_CHANGED=0 HBA_CHANGED=0
else
  chown postgres:postgres "$DATADIR"; chmod 0700 "$DATADIR"
  configure "$DATADIR"
fi

# A postmaster.pid or socket lock file whose pid is gone, a zombie or another program is stale
# (after a kill -9 or a reboot); the server refuses to start while it is there.
pid=$(head -n1 "$DATADIR/postmaster.pid" 2>/dev/null || true)
if ! is_ours "$pid"; then
  stop_orphans
  if [[ -e $DATADIR/postmaster.pid ]]; then
    log "removing stale $DATADIR/postmaster.pid (pid ${pid:-?})"
    rm -f -- "$DATADIR/postmaster.pid"
  fi
  pid=$(head -n1 "$SOCKDIR/.s.PGSQL.$PORT.lock" 2>/dev/null || true)
  if [[ -e $SOCKDIR/.s.PGSQL.$PORT.lock ]] && ! is_ours "$pid"; then
    log "removing stale socket lock $SOCKDIR/.s.PGSQL.$PORT.lock (pid ${pid:-?})"
    rm -f -- "$SOCKDIR/.s.PGSQL.$PORT.lock" "$SOCKDIR/.s.PGSQL.$PORT"
  fi
fi

pg_ctl() { detached runuser -u postgres -- "$PGBIN/pg_ctl" -D "$DATADIR" "$@"; }
if pg_ctl status >/dev/null 2>&1; then
  if ((CONF_CHANGED)); then
    log "config changed: restarting"
    elog "pg_ctl restart"
    pg_ctl -l "$PGLOG" -w -t 120 -m fast restart >>"$ELOG" 2>&1 || die "pg_ctl restart failed"
  elif ((HBA_CHANGED)); then
    log "pg_hba.conf changed: reloading"
    pg_ctl reload >>"$ELOG" 2>&1 || die "pg_ctl reload failed"
  fi
else
  log "starting server on $HOST:$PORT ..."
  elog "pg_ctl start"
  pg_ctl -l "$PGLOG" -w -t 120 start >>"$ELOG" 2>&1 || {
    tail -n 5 "$PGLOG" >&2 || true
    die "pg_ctl start failed (port $PORT taken by another server?)"
  }
fi
for _ in $(seq 120); do
  "$PGBIN/pg_isready" -q -h "$SOCKDIR" -p "$PORT" -t 1 && break
  sleep 0.5
done
"$PGBIN/pg_isready" -q -h "$SOCKDIR" -p "$PORT" -t 1 || die "server does not answer on $SOCKDIR"

# ---------------------------------------------------------------------------- role, pgpass
if ! read_password; then
  log "generating a new password for $ROLE into $PGPASS"
  PW=$(od -An -tx1 -N24 /dev/urandom | tr -d ' \n')   # 48 hex chars: no ':' or '\' to escape
  tmp=$(mktemp "$PGPASS.XXXXXX")
  printf '%s:%s:*:%s:%s\nlocalhost:%s:*:%s:%s\n' \
    "$HOST" "$PORT" "$ROLE" "$PW" "$PORT" "$ROLE" "$PW" >"$tmp"
  chmod 0600 "$tmp"
  mv -f -- "$tmp" "$PGPASS"
fi
chmod 0600 "$PGPASS"

# Statement text goes through stdin (not argv); logging is muted for this session so that even a
# failing ALTER ROLE cannot put the password into the server log.
{
  printf '%s\n' \
    "SET log_statement = 'none';" \
    "SET log_min_error_statement = 'panic';" \
    "SET log_min_duration_statement = -1;" \
    "SELECT 'CREATE ROLE $ROLE' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$ROLE') \\gexec"
  printf "ALTER ROLE %s WITH LOGIN SUPERUSER PASSWORD '%s';\n" "$ROLE" "$PW"
} | as_pg "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$SOCKDIR" -p "$PORT" -U postgres -d postgres \
    >>"$ELOG" 2>&1 || die "could not create/alter role $ROLE"
unset PW

can_login || die "server is up but $ROLE cannot log in with $PGPASS"
emit "ready"
