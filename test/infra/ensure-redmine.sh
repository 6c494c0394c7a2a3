#!/usr/bin/env bash
# test/infra/ensure-redmine.sh -- idempotently provide a real Redmine for the notify-redmine tests.
#
# Debian's `redmine` + `redmine-sqlite` packages, run as a Redmine instance of its own (Debian's
# multi-tenancy: REDMINE_INSTANCE=ro-test, files under /var/lib/redmine/ro-test), sqlite backend,
# served by WEBrick on 127.0.0.1:19480 only. Debian's own `default` instance is not configured
# (dbconfig off) and never started.
#
#   /var/lib/redmine/ro-test/
#     config/database.yml     sqlite file db/redmine.sqlite3          root 0644
#     config/secret_key.txt   the instance's cookie secret            root 0600
#     api-key                 the admin's REST API key: the ONLY place it lives   root 0600
#     serve.rb                the WEBrick launcher (written here)
#     log/ tmp/ files/ db/    the instance's own
#     server.log              the server's output; ensure.log this script's
#
# Set up once: schema migrated, Redmine's default data (trackers, statuses, priorities) loaded,
# the REST API enabled (Setting rest_api_enabled, the settings table), a private project
# `ro-test-platform` with issue tracking and one issue. Tests create their own issues in it.
#
# stdout: only these KEY=VALUE lines (progress and errors go to stderr):
#   REDMINE_URL=http://127.0.0.1:19480
#   REDMINE_API_KEY_FILE=/var/lib/redmine/ro-test/api-key
#   REDMINE_PROJECT=ro-test-platform
# The key is never printed, never on a command line and never in the environment.
#
# --packages: only install the packages (the part that needs apt, so it need not overlap other
# scripts' apt-get runs); then a plain run does the rest in about 25 s.
# Fast path: the key file's key is accepted by a running server (GET /users/current.json): nothing
# changes. Otherwise (needs root): install the packages (apt-get update only when needed),
# migrate and seed once (cached: skipped when the database is set up), start the server.
# Stop it with: kill "$(cat /var/lib/redmine/ro-test/server.pid)".
set -euo pipefail
umask 022
cd /

readonly INSTANCE=ro-test
readonly HOME_DIR=/var/lib/redmine/$INSTANCE
readonly APP=/usr/share/redmine
readonly PORT="${RO_TEST_REDMINE_PORT:-19480}"
readonly HOST=127.0.0.1
readonly URL="http://$HOST:$PORT"
readonly KEY_FILE=$HOME_DIR/api-key
readonly PROJECT=ro-test-platform
readonly PIDFILE=$HOME_DIR/server.pid
readonly ELOG=$HOME_DIR/ensure.log
readonly SLOG=$HOME_DIR/server.log
readonly SEEDED=$HOME_DIR/db/.seeded
readonly LOCK=/run/lock/ro-test-redmine.lock
T0=$(date +%s.%N); readonly T0

[[ $PORT =~ ^[0-9]{4,5}$ ]] || { echo "ensure-redmine: bad RO_TEST_REDMINE_PORT" >&2; exit 2; }

log() { printf 'ensure-redmine: %s\n' "$*" >&2; }
die() {
  log "ERROR: $*"
  [[ -f $ELOG ]] && log "script log: $ELOG"
  [[ -f $SLOG ]] && log "server log: $SLOG"
  exit 1
}
elapsed() { awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1fs", b - a }'; }
emit() {
  printf 'REDMINE_URL=%s\nREDMINE_API_KEY_FILE=%s\nREDMINE_PROJECT=%s\n' "$URL" "$KEY_FILE" "$PROJECT"
  log "$1 in $(elapsed): $URL (admin API key only in $KEY_FILE)"
}
elog() { printf '\n== %s %s\n' "$(date -u +%FT%TZ)" "$*" >>"$ELOG"; }
# The key goes to curl through a header file read from stdin, never argv.
answers() {
  [[ -r $KEY_FILE ]] && command -v curl >/dev/null 2>&1 || return 1
  printf 'X-Redmine-API-Key: %s\n' "$(cat "$KEY_FILE")" |
    curl -fsS -o /dev/null --max-time 5 -H @- "$URL/users/current.json" 2>/dev/null
}
rails_env() { env -C "$APP" REDMINE_INSTANCE="$INSTANCE" RAILS_ENV=production "$@"; }

PACKAGES_ONLY=0
case "${1:-}" in
  "") ;;
  --packages) PACKAGES_ONLY=1 ;;
  *) echo "usage: $0 [--packages]" >&2; exit 2 ;;
esac

if ((!PACKAGES_ONLY)) && answers; then emit "already running"; exit 0; fi
[[ $EUID -eq 0 ]] || die "no Redmine answers on $URL with $KEY_FILE; setting it up needs root"
mkdir -p /run/lock
exec 9>"$LOCK"
flock -w 600 9 || die "could not take $LOCK within 600s"
if ((!PACKAGES_ONLY)) && answers; then emit "ready (set up by a concurrent run)"; exit 0; fi

# ---------------------------------------------------------------------------- packages
PKGS=(redmine redmine-sqlite ruby-webrick curl)
need_install() {
  local installed
  installed=$(dpkg-query -W -f='${Status}\n' "${PKGS[@]}" 2>/dev/null | grep -c 'install ok installed' || true)
  [[ $installed -ne ${#PKGS[@]} ]]
}
mkdir -p "$HOME_DIR"
touch "$ELOG"; chmod 0600 "$ELOG"
apt_install() {
  elog "apt-get install ${PKGS[*]}"
  # Debian's default instance would want a database from dbconfig-common: ours is set up below.
  printf 'redmine redmine/instances/default/dbconfig-install boolean false\n' | debconf-set-selections
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    -o DPkg::Lock::Timeout=300 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
    "${PKGS[@]}" </dev/null >>"$ELOG" 2>&1
}
if need_install; then
  log "installing ${PKGS[*]} (about 75 s on a fresh machine) ..."
  if ! apt_install; then
    log "apt-get update ..."
    elog "apt-get update"
    DEBIAN_FRONTEND=noninteractive apt-get update -q -o DPkg::Lock::Timeout=300 </dev/null >>"$ELOG" 2>&1 \
      || log "apt-get update reported errors; trying the install anyway"
    apt_install || die "apt-get install ${PKGS[*]} failed"
  fi
  log "packages installed at $(elapsed)"
fi
((PACKAGES_ONLY)) && exit 0

# ---------------------------------------------------------------------------- instance files
install -d -m 0755 "$HOME_DIR/config" "$HOME_DIR/db" "$HOME_DIR/log" "$HOME_DIR/tmp" "$HOME_DIR/tmp/cache" "$HOME_DIR/files"
printf 'production:\n  adapter: sqlite3\n  database: %s/db/redmine.sqlite3\n  encoding: utf8\n' "$HOME_DIR" >"$HOME_DIR/config/database.yml"
if [[ ! -s $HOME_DIR/config/secret_key.txt ]]; then
  (umask 077; od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$HOME_DIR/config/secret_key.txt")
fi
# WEBrick is loaded before Rails' bundler setup, which would hide it (it is not in Redmine's Gemfile).
cat >"$HOME_DIR/serve.rb" <<'EOF'
require 'webrick'
require File.expand_path('config/environment', Dir.pwd)
require 'rack/handler/webrick'
Rack::Handler::WEBrick.run(Rails.application, Host: ENV.fetch('BIND'), Port: Integer(ENV.fetch('PORT')),
  AccessLog: [], Logger: WEBrick::Log.new($stderr, WEBrick::Log::WARN))
EOF

# ---------------------------------------------------------------------------- database (once)
if [[ ! -f $SEEDED || ! -s $KEY_FILE ]]; then
  log "migrating and seeding $HOME_DIR/db/redmine.sqlite3 ..."
  elog "rake db:migrate"
  rails_env bin/rake db:migrate </dev/null >>"$ELOG" 2>&1 || die "rake db:migrate failed"
  elog "rake redmine:load_default_data"
  rails_env REDMINE_LANG=en bin/rake redmine:load_default_data </dev/null >>"$ELOG" 2>&1 || die "loading Redmine's default data failed"
  cat >"$HOME_DIR/tmp/seed.rb" <<'EOF'
Setting.rest_api_enabled = '1'
Setting.default_language = 'en'
admin = User.find_by!(login: 'admin')
File.open(ENV.fetch('KEY_OUT'), File::WRONLY | File::CREAT | File::TRUNC, 0o600) { |f| f.puts(admin.api_key) }
identifier = ENV.fetch('PROJECT')
project = Project.find_by(identifier: identifier) ||
  Project.create!(name: 'Release orchestrator tests', identifier: identifier, is_public: false,
                  tracker_ids: Tracker.pluck(:id), enabled_module_names: %w[issue_tracking])
unless Issue.where(project: project).exists?
  Issue.create!(project: project, tracker: project.trackers.first, author: admin, subject: 'Release 1',
                priority: IssuePriority.default || IssuePriority.first, status: IssueStatus.first)
end
EOF
  elog "rails runner seed.rb"
  rails_env KEY_OUT="$KEY_FILE" PROJECT="$PROJECT" bin/rails runner "$HOME_DIR/tmp/seed.rb" </dev/null >>"$ELOG" 2>&1 || die "seeding (REST API, key, project) failed"
  chmod 0600 "$KEY_FILE"
  touch "$SEEDED"
  log "database ready at $(elapsed)"
fi
chown -R www-data:www-data "$HOME_DIR/db" "$HOME_DIR/log" "$HOME_DIR/tmp" "$HOME_DIR/files" 2>/dev/null || true

# ---------------------------------------------------------------------------- server
if [[ -s $PIDFILE ]] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
  # Ours, alive, but it did not answer: give a starting one a moment, then replace it.
  for _ in $(seq 60); do answers && { emit "ready (was starting)"; exit 0; }; sleep 0.25; done
  log "stopping the server of $PIDFILE that does not answer"
  kill "$(cat "$PIDFILE")" 2>/dev/null || true
  sleep 1
fi
log "starting Redmine on $URL ..."
elog "serve.rb on $HOST:$PORT"
# setsid: the server gets a session of its own; fd 9 (our lock) is not passed on.
env -C "$APP" REDMINE_INSTANCE="$INSTANCE" RAILS_ENV=production BIND="$HOST" PORT="$PORT" \
  setsid ruby "$HOME_DIR/serve.rb" </dev/null >>"$SLOG" 2>&1 9>&- &
echo $! >"$PIDFILE"
for _ in $(seq 240); do
  answers && { emit "ready"; exit 0; }
  kill -0 "$(cat "$PIDFILE")" 2>/dev/null || break
  sleep 0.25
done
tail -n 8 "$SLOG" >&2 || true
die "Redmine did not answer on $URL (port $PORT taken by another server?)"
