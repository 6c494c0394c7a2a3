#!/usr/bin/env bash
# test/infra/ensure-mariadb.sh -- idempotently provide a private MariaDB server for the tests.
#
# Not the system server (/etc/mysql, port 3306, never started here): Debian's mariadbd run with a
# config file of its own, its own data folder, listening on 127.0.0.1:53306 only.
#
#   /var/lib/ro-test-mariadb/          root:mysql 0750
#     server.cnf     the server's only config (--defaults-file)   root 0644
#     data/          datadir (mariadb-install-db)                mysql 0700
#     run/           socket, socket lock, pid file               mysql 0750
#     mariadb.log    server error log                            mysql 0600
#     ensure.log     this script's apt/install-db/start output   root 0600
#     client.cnf     [client] user, password, host, port for the test user ro_test   0600
#                    -- the ONLY place the password lives
#
# stdout: only these KEY=VALUE lines (progress and errors go to stderr):
#   MARIADB_OPTIONS_FILE=/var/lib/ro-test-mariadb/client.cnf
#   MARIADB_HOST=127.0.0.1
#   MARIADB_PORT=53306
#   MARIADB_SOCKET=/var/lib/ro-test-mariadb/run/mariadb.sock
#   MARIADB_USER=ro_test
# The password is never printed, never on a command line and never in the environment.
#
# Fast path: when ro_test logs in with client.cnf, nothing changes (`--full` skips it).
# Otherwise (needs root): install mariadb-server and mariadb-client if missing (apt-get update
# only when the install cannot be done without it), mariadb-install-db once, recover from a
# killed server (stale pid file, socket or socket lock; a hung server of ours is stopped), start
# mariadbd as the mysql user, create or re-password ro_test, write client.cnf.
#
# Overrides (optional): RO_TEST_MARIADB_BASE (default /var/lib/ro-test-mariadb),
#                       RO_TEST_MARIADB_PORT (default 53306).
set -euo pipefail
umask 077
cd /

readonly BASE="${RO_TEST_MARIADB_BASE:-/var/lib/ro-test-mariadb}"
readonly PORT="${RO_TEST_MARIADB_PORT:-53306}"
readonly HOST=127.0.0.1
readonly USER_NAME=ro_test
readonly SERVER_CNF="$BASE/server.cnf"
readonly DATADIR="$BASE/data"
readonly NEWDIR="$BASE/data.install"      # mariadb-install-db goes here, then one rename to $DATADIR
readonly RUNDIR="$BASE/run"
readonly SOCK="$RUNDIR/mariadb.sock"
readonly PIDFILE="$RUNDIR/mariadbd.pid"
readonly SLOG="$BASE/mariadb.log"
readonly ELOG="$BASE/ensure.log"
readonly CLIENT_CNF="$BASE/client.cnf"
readonly LOCK="/run/lock/ro-test-mariadb-$PORT.lock"
T0=$(date +%s.%N); readonly T0

[[ $BASE =~ ^/[A-Za-z0-9._/-]+$ && $BASE != / ]] || { echo "ensure-mariadb: bad RO_TEST_MARIADB_BASE" >&2; exit 2; }
[[ $PORT =~ ^[0-9]{4,5}$ ]] || { echo "ensure-mariadb: bad RO_TEST_MARIADB_PORT" >&2; exit 2; }
# The caller's client environment must not point the checks elsewhere.
unset MYSQL_HOST MYSQL_TCP_PORT MYSQL_UNIX_PORT MYSQL_PWD MARIADB_HOST MARIADB_PORT 2>/dev/null || true

log() { printf 'ensure-mariadb: %s\n' "$*" >&2; }
die() {
  log "ERROR: $*"
  [[ -f $ELOG ]] && log "script log: $ELOG"
  [[ -f $SLOG ]] && log "server log: $SLOG"
  exit 1
}
elapsed() { awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2fs", b - a }'; }
emit() {
  printf 'MARIADB_OPTIONS_FILE=%s\nMARIADB_HOST=%s\nMARIADB_PORT=%s\nMARIADB_SOCKET=%s\nMARIADB_USER=%s\n' \
    "$CLIENT_CNF" "$HOST" "$PORT" "$SOCK" "$USER_NAME"
  log "$1 in $(elapsed): $USER_NAME@$HOST:$PORT, socket $SOCK, data $DATADIR (password only in $CLIENT_CNF)"
}
elog() { printf '\n== %s %s\n' "$(date -u +%FT%TZ)" "$*" >>"$ELOG"; }
# Run "$@" with only fds 0-2 open: a daemon it leaves behind must not hold our lock or a caller's
# pipe open (a caller waiting for EOF on our stdout would hang).
detached() {
  (
    for fd in /proc/"$BASHPID"/fd/*; do
      fd=${fd##*/}
      if ((fd > 2)); then eval "exec $fd>&-" 2>/dev/null || true; fi
    done
    exec "$@"
  )
}

# The test user logs in over TCP with the option file (the way the tests and the strategy do).
can_login() {
  [[ -r $CLIENT_CNF ]] && command -v mariadb >/dev/null 2>&1 || return 1
  [[ "$(timeout 5 mariadb --defaults-extra-file="$CLIENT_CNF" --protocol=TCP --host="$HOST" --port="$PORT" \
        --connect-timeout=3 --batch --skip-column-names -e 'SELECT 1' 2>/dev/null)" == 1 ]]
}
# root over our socket (unix_socket authentication: the OS user root is MariaDB's root@localhost).
admin() { mariadb --no-defaults --protocol=SOCKET --socket="$SOCK" --user=root --batch --skip-column-names "$@"; }
# `timeout`: a server that accepts but never answers (stopped, hung) would block the handshake.
answers() { timeout 3 mariadb-admin --no-defaults --protocol=SOCKET --socket="$SOCK" --user=root --connect-timeout=2 ping >/dev/null 2>&1; }

FULL=0
case "${1:-}" in
  "") ;;
  --full) FULL=1 ;;
  *) echo "usage: $0 [--full]" >&2; exit 2 ;;
esac

# ---------------------------------------------------------------------------- fast path
if ((!FULL)) && can_login; then emit "already running"; exit 0; fi

[[ $EUID -eq 0 ]] || die "no usable server/client.cnf for $(id -un) (is $CLIENT_CNF readable?); setting it up needs root"
mkdir -p /run/lock
exec 9>"$LOCK"
flock -w 600 9 || die "could not take $LOCK within 600s"
if ((!FULL)) && can_login; then emit "ready (set up by a concurrent run)"; exit 0; fi

mkdir -p "$BASE"
touch "$ELOG"; chmod 0600 "$ELOG"

# ---------------------------------------------------------------------------- packages
need_install() {
  local b
  for b in mariadbd mariadb-install-db mariadb mariadb-admin mariadb-dump mysqldump; do
    command -v "$b" >/dev/null 2>&1 || [[ -x /usr/sbin/$b ]] || return 0
  done
  getent passwd mysql >/dev/null || return 0
  return 1
}
apt_install() {
  elog "apt-get install mariadb-server mariadb-client"
  # policy-rc.d (if any) keeps Debian's own server from starting; ours runs from its own folder.
  detached env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    -o DPkg::Lock::Timeout=300 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
    mariadb-server mariadb-client >>"$ELOG" 2>&1
}
if need_install; then
  log "installing mariadb-server and mariadb-client ..."
  if ! apt_install; then
    log "apt-get update ..."
    elog "apt-get update"
    detached env DEBIAN_FRONTEND=noninteractive apt-get update -q -o DPkg::Lock::Timeout=300 >>"$ELOG" 2>&1 \
      || log "apt-get update reported errors (some source unreachable?); trying the install anyway"
    apt_install || die "apt-get install mariadb-server mariadb-client failed"
  fi
  need_install && die "packages installed but mariadbd, the clients or the mysql user are still missing"
fi
MARIADBD=$(command -v mariadbd || echo /usr/sbin/mariadbd)
readonly MARIADBD

# ---------------------------------------------------------------------------- folders, config
install -d -m 0750 -o root -g mysql "$BASE"
install -d -m 0750 -o mysql -g mysql "$RUNDIR"
[[ -f $SLOG ]] || install -m 0600 -o mysql -g mysql /dev/null "$SLOG"
tmp=$(mktemp "$SERVER_CNF.XXXXXX")
cat >"$tmp" <<EOF
# Managed by test/infra/ensure-mariadb.sh; rewritten on every full run.
[mariadbd]
datadir = $DATADIR
socket = $SOCK
pid-file = $PIDFILE
port = $PORT
bind-address = $HOST
skip-name-resolve
log-error = $SLOG
character-set-server = utf8mb4
collation-server = utf8mb4_general_ci
innodb_buffer_pool_size = 128M
innodb_flush_log_at_trx_commit = 2
max_connections = 100
EOF
chmod 0644 "$tmp"
CONF_CHANGED=1
if [[ -f $SERVER_CNF ]] && cmp -s "$tmp" "$SERVER_CNF"; then CONF_CHANGED=0; rm -f "$tmp"; else mv -f "$tmp" "$SERVER_CNF"; fi

# Live (not zombie) mariadbd processes started with our config file.
ours() {
  local p stat
  for p in /proc/[0-9]*; do
    { read -r stat <"$p/stat"; } 2>/dev/null || continue
    [[ $stat == *" (mariadbd) "[^Z]* ]] || continue
    tr '\0' '\n' <"$p/cmdline" 2>/dev/null | grep -qxF -- "--defaults-file=$SERVER_CNF" && echo "${p#/proc/}"
  done
  return 0
}
stop_ours() {
  local pids sig
  pids=$(ours)
  [[ -n $pids ]] || return 0
  log "stopping server processes of $DATADIR that do not answer: ${pids//$'\n'/ }"
  for sig in TERM KILL; do
    # shellcheck disable=SC2086
    kill -s "$sig" $pids 2>/dev/null || true
    # shellcheck disable=SC2086
    kill -s CONT $pids 2>/dev/null || true   # a stopped process acts on TERM only once continued
    for _ in $(seq 100); do
      [[ -z $(ours) ]] && return 0
      sleep 0.2
    done
    pids=$(ours)
  done
  die "server processes did not exit: $pids"
}

# ---------------------------------------------------------------------------- data folder
if [[ ! -d $DATADIR/mysql ]]; then
  stop_ours
  if [[ -d $DATADIR ]]; then
    log "removing incomplete data folder $DATADIR"
    rm -rf -- "$DATADIR"
  fi
  log "mariadb-install-db $DATADIR ..."
  rm -rf -- "$NEWDIR"
  install -d -m 0700 -o mysql -g mysql "$NEWDIR"
  elog "mariadb-install-db $NEWDIR"
  mariadb-install-db --defaults-file="$SERVER_CNF" --user=mysql --datadir="$NEWDIR" \
    --auth-root-authentication-method=socket --skip-test-db >>"$ELOG" 2>&1 \
    || die "mariadb-install-db failed"
  mv -- "$NEWDIR" "$DATADIR"
fi
chown mysql:mysql "$DATADIR"; chmod 0700 "$DATADIR"

# ---------------------------------------------------------------------------- server
if answers && ((CONF_CHANGED)); then
  log "server.cnf changed: restarting"
  admin -e 'SHUTDOWN' >>"$ELOG" 2>&1 || true
  for _ in $(seq 150); do [[ -z $(ours) ]] && break; sleep 0.2; done
fi
if ! answers; then
  # A server of ours that is alive but does not answer: give a starting one a moment, then stop it.
  if [[ -n $(ours) ]]; then
    end=$((SECONDS + 10))
    while ((SECONDS < end)); do answers && break; sleep 0.2; done
    answers || stop_ours
  fi
fi
if ! answers; then
  # What a killed server leaves: a pid file, a socket and its lock. mariadbd refuses a socket whose
  # lock names a live process, so they go once no process of ours is left.
  for f in "$PIDFILE" "$SOCK" "$SOCK.lock"; do
    if [[ -e $f || -L $f ]]; then log "removing stale $f"; rm -f -- "$f"; fi
  done
  log "starting mariadbd on $HOST:$PORT ..."
  elog "mariadbd --defaults-file=$SERVER_CNF --user=mysql"
  # setsid --fork: the server gets a session of its own and we do not wait for it.
  detached setsid --fork "$MARIADBD" --defaults-file="$SERVER_CNF" --user=mysql </dev/null >>"$ELOG" 2>&1
  for _ in $(seq 300); do
    answers && break
    [[ -n $(ours) ]] || { sleep 0.3; [[ -n $(ours) ]] || break; }
    sleep 0.2
  done
  answers || { tail -n 8 "$SLOG" >&2 || true; die "mariadbd did not start (port $PORT taken by another server?)"; }
fi

# ---------------------------------------------------------------------------- user, client.cnf
PW=""
if [[ -f $CLIENT_CNF ]]; then PW=$(sed -n 's/^password *= *\([A-Za-z0-9]\{16,\}\)$/\1/p' "$CLIENT_CNF" | head -n1); fi
if [[ -z $PW ]]; then
  log "generating a new password for $USER_NAME into $CLIENT_CNF"
  PW=$(od -An -tx1 -N24 /dev/urandom | tr -d ' \n')   # 48 hex characters: nothing to quote
fi
tmp=$(mktemp "$CLIENT_CNF.XXXXXX")
printf '# Written by test/infra/ensure-mariadb.sh: the test user of the server on %s:%s.\n[client]\nuser = %s\npassword = %s\nhost = %s\nport = %s\n' \
  "$HOST" "$PORT" "$USER_NAME" "$PW" "$HOST" "$PORT" >"$tmp"
chmod 0600 "$tmp"
mv -f -- "$tmp" "$CLIENT_CNF"

# Statements through stdin, never argv.
{
  for h in "$HOST" localhost; do
    printf "CREATE USER IF NOT EXISTS '%s'@'%s' IDENTIFIED BY '%s';\n" "$USER_NAME" "$h" "$PW"
    printf "ALTER USER '%s'@'%s' IDENTIFIED BY '%s';\n" "$USER_NAME" "$h" "$PW"
    printf "GRANT ALL PRIVILEGES ON *.* TO '%s'@'%s';\n" "$USER_NAME" "$h"
  done
} | admin >>"$ELOG" 2>&1 || die "could not create or alter user $USER_NAME"
unset PW

can_login || die "server is up but $USER_NAME cannot log in with $CLIENT_CNF"
emit "ready"
