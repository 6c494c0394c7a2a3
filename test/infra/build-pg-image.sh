#!/usr/bin/env bash
# build-pg-image.sh: build the local PostgreSQL test image local/testpg:15 without any
# registry: a minimal Debian root filesystem with Debian's postgresql-15, made with
# `debootstrap --variant=minbase` and imported with `docker import`.
#
#   bash test/infra/build-pg-image.sh [--force]
#
# The image runs /usr/local/bin/pg-entrypoint as PID 1: on the first start it initializes a
# cluster in /var/lib/postgresql/data (mount a named volume there), with local (socket) auth
# `peer` and host auth `scram-sha-256`; when POSTGRES_USER / POSTGRES_DB are set it creates
# that role (no password, no login over the network without one) and that database owned by
# it. Then it runs postgres as the OS user postgres, listening on every interface of the
# container (the compose network). Health: `pg_isready` inside.
#
# Idempotent: an image whose label testpg.recipe matches this script's recipe is kept;
# --force rebuilds. Needs a running engine (test/infra/ensure-docker.sh) and root.
# Exit: 0 image ready; 1 a build or a check failed.
set -euo pipefail

IMAGE=${TESTPG_IMAGE:-local/testpg:15}
SUITE=bookworm
MIRROR=${TESTPG_MIRROR:-http://deb.debian.org/debian}
FORCE=0
for a in "$@"; do
  case $a in
    --force) FORCE=1 ;;
    -h | --help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "usage: $0 [--force]" >&2; exit 2 ;;
  esac
done
export DEBIAN_FRONTEND=noninteractive

say() { echo "[build-pg-image] $*" >&2; }
die() { echo "[build-pg-image] ERROR: $*" >&2; exit 1; }

timeout 15 docker info >/dev/null 2>&1 || die "no Docker engine answers; run test/infra/ensure-docker.sh first"

exec 9>/tmp/build-pg-image.lock
flock -w 600 9 || die "another build-pg-image.sh holds /tmp/build-pg-image.lock"

# The recipe label: changes whenever this script changes.
RECIPE=$(sha256sum <"$0" | cut -c1-16)
got=$(docker image inspect --format '{{index .Config.Labels "testpg.recipe"}}' "$IMAGE" 2>/dev/null || true)
if [ $FORCE = 0 ] && [ "$got" = "$RECIPE" ]; then
  echo "[build-pg-image] ready: $IMAGE (kept; recipe $RECIPE)"
  exit 0
fi

if ! command -v debootstrap >/dev/null 2>&1; then
  say "apt-get install -y debootstrap"
  apt-get install -y --no-install-recommends debootstrap >/tmp/build-pg-image-apt.log 2>&1 ||
    { apt-get update >>/tmp/build-pg-image-apt.log 2>&1 &&
      apt-get install -y --no-install-recommends debootstrap >>/tmp/build-pg-image-apt.log 2>&1; } ||
    die "apt-get install debootstrap failed; see /tmp/build-pg-image-apt.log"
fi

# The Debian root filesystem is cached as a tarball (keyed by what debootstrap is asked for), so a
# change of the entrypoint below does not download the packages again.
CACHE=/var/cache/testpg
ROOTFS_KEY=$(echo "minbase $SUITE postgresql-15 $MIRROR v1" | sha256sum | cut -c1-16)
ROOTFS_TAR=$CACHE/rootfs-$ROOTFS_KEY.tar
root=$(mktemp -d /tmp/testpg-rootfs.XXXXXX)
trap 'rm -rf "$root"' EXIT
if [ ! -s "$ROOTFS_TAR" ]; then
  say "debootstrap $SUITE with postgresql-15 into $root (a few minutes)"
  debootstrap --variant=minbase --include=postgresql-15 "$SUITE" "$root" "$MIRROR" \
    >/tmp/build-pg-image-debootstrap.log 2>&1 ||
    die "debootstrap failed; see /tmp/build-pg-image-debootstrap.log"
  # Debian's package made a cluster in /var/lib/postgresql/15/main; the image makes its own.
  rm -rf "$root"/var/lib/postgresql/15 "$root"/etc/postgresql/15
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* \
    "$root"/usr/share/man/* "$root"/usr/share/locale/*
  mkdir -p "$CACHE"
  tar -C "$root" --numeric-owner -cf "$ROOTFS_TAR.tmp" . && mv "$ROOTFS_TAR.tmp" "$ROOTFS_TAR"
else
  say "using the cached root filesystem $ROOTFS_TAR"
  tar -C "$root" --numeric-owner -xf "$ROOTFS_TAR"
fi
mkdir -p "$root"/var/lib/postgresql/data "$root"/run/postgresql
cat >"$root"/usr/local/bin/pg-entrypoint <<'EOF'
#!/bin/sh
# PID 1 of local/testpg: a cluster in $PGDATA on first start, then postgres in the foreground.
set -eu
BIN=/usr/lib/postgresql/15/bin
PGDATA=/var/lib/postgresql/data
as_pg() { setpriv --reuid=postgres --regid=postgres --init-groups "$@"; }
mkdir -p "$PGDATA" /run/postgresql
chown postgres:postgres "$PGDATA" /run/postgresql
chmod 0700 "$PGDATA"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  as_pg "$BIN/initdb" -D "$PGDATA" -U postgres --encoding=UTF8 --locale=C.UTF-8 \
    --auth-local=peer --auth-host=scram-sha-256 >/dev/null
  echo "host all all 0.0.0.0/0 scram-sha-256" >>"$PGDATA/pg_hba.conf"
  if [ -n "${POSTGRES_USER:-}" ]; then
    # A socket folder of its own: nothing outside this script connects before the role and
    # database exist (pg_isready on the default socket answers only once the real server runs).
    mkdir -p /run/postgresql-init && chown postgres:postgres /run/postgresql-init
    as_pg "$BIN/pg_ctl" -D "$PGDATA" -w -o "-c listen_addresses='' -c unix_socket_directories=/run/postgresql-init" start >/dev/null
    as_pg "$BIN/psql" -h /run/postgresql-init -U postgres -d postgres -v ON_ERROR_STOP=1 -q \
      -v u="$POSTGRES_USER" -v d="${POSTGRES_DB:-$POSTGRES_USER}" <<'SQL'
CREATE ROLE :"u" LOGIN;
CREATE DATABASE :"d" OWNER :"u";
SQL
    as_pg "$BIN/pg_ctl" -D "$PGDATA" -w -m fast stop >/dev/null
  fi
fi
exec setpriv --reuid=postgres --regid=postgres --init-groups "$BIN/postgres" -D "$PGDATA" \
  -c listen_addresses='*' -c unix_socket_directories=/run/postgresql
EOF
chmod 0755 "$root"/usr/local/bin/pg-entrypoint

say "docker import $IMAGE"
tar -C "$root" --numeric-owner -cf - . |
  docker import \
    --change 'ENTRYPOINT ["/usr/local/bin/pg-entrypoint"]' \
    --change 'ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin PGHOST=/run/postgresql LANG=C.UTF-8' \
    --change 'EXPOSE 5432' \
    --change "LABEL testpg.recipe=$RECIPE" \
    --message "testpg (debootstrap $SUITE, postgresql-15)" \
    - "$IMAGE" >/dev/null

# verify: start it, wait for pg_isready, run a query as the app role over the local socket
name="testpg-verify-$$"
docker run -d --name "$name" -e POSTGRES_USER=app -e POSTGRES_DB=app "$IMAGE" >/dev/null
ok=0
for _ in $(seq 1 60); do
  if docker exec "$name" pg_isready -q 2>/dev/null; then ok=1; break; fi
  sleep 0.5
done
out=$(docker exec -u postgres "$name" psql -AtX -d app -c 'select current_database()' 2>&1 || true)
docker rm -f "$name" >/dev/null
[ $ok = 1 ] || die "$IMAGE: pg_isready never answered"
[ "$out" = app ] || die "$IMAGE: query gave '$out', want 'app'"
echo "[build-pg-image] ready: $IMAGE (built; recipe $RECIPE)"
