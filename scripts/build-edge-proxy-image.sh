#!/usr/bin/env bash
# build-edge-proxy-image.sh: build the edge proxy image local/edge-haproxy:bookworm (HAProxy from
# Debian's own package) without any registry: `debootstrap --variant=minbase --include=haproxy`
# into a temp folder, then `docker import`. About 40 s and a few hundred MB of downloads the first
# time; kept afterwards (skipped when an image built by this recipe exists).
#
#   bash scripts/build-edge-proxy-image.sh [--force]
#
# On a prod host: once, before a service's first rolling release (release-run refuses that release
# while the image is missing, naming this script). The test command runs it too, and skips it
# when the image exists.
#
# Env: EDGE_PROXY_IMAGE (default local/edge-haproxy:bookworm), DEBIAN_MIRROR (default
# http://deb.debian.org/debian). Needs root, debootstrap (installed when missing) and a running engine.
# Exit: 0 image ready; 1 a build or a check failed.
set -euo pipefail

IMAGE=${EDGE_PROXY_IMAGE:-local/edge-haproxy:bookworm}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
FORCE=0
case ${1:-} in
  --force) FORCE=1 ;;
  '') ;;
  -h | --help) sed -n '2,12p' "$0"; exit 0 ;;
  *) echo "usage: $0 [--force]" >&2; exit 2 ;;
esac
export DEBIAN_FRONTEND=noninteractive

say() { echo "[build-edge-proxy-image] $*" >&2; }
die() { echo "[build-edge-proxy-image] ERROR: $*" >&2; exit 1; }

timeout 15 docker info >/dev/null 2>&1 || die "no Docker engine answers; run test/infra/ensure-docker.sh first"

# The recipe label changes whenever this script changes: an image from an older recipe is rebuilt.
# The recipe is what the script does: its comments may change without a rebuild.
RECIPE=$(grep -v '^\s*#' "$0" | sha256sum | cut -c1-16)
image_ok() {
  [ "$(docker image inspect --format '{{index .Config.Labels "edge-proxy.recipe"}}' "$IMAGE" 2>/dev/null)" = "$RECIPE" ]
}
if [ $FORCE = 0 ] && image_ok; then
  echo "[build-edge-proxy-image] ready: $IMAGE (kept; recipe $RECIPE)"
  exit 0
fi

exec 9>/tmp/build-edge-proxy-image.lock
flock -w 300 9 || die "another build-edge-proxy-image.sh holds /tmp/build-edge-proxy-image.lock"
if [ $FORCE = 0 ] && image_ok; then
  echo "[build-edge-proxy-image] ready: $IMAGE (built meanwhile by another run)"
  exit 0
fi

if ! command -v debootstrap >/dev/null 2>&1; then
  say "apt-get install -y debootstrap"
  apt-get install -y --no-install-recommends debootstrap >/tmp/build-edge-proxy-image-apt.log 2>&1 ||
    { apt-get update >>/tmp/build-edge-proxy-image-apt.log 2>&1 && apt-get install -y --no-install-recommends debootstrap >>/tmp/build-edge-proxy-image-apt.log 2>&1; } ||
    die "apt-get install debootstrap failed; see /tmp/build-edge-proxy-image-apt.log"
fi

root=$(mktemp -d /tmp/edge-proxy-rootfs.XXXXXX)
trap 'rm -rf "$root"' EXIT
say "debootstrap --variant=minbase --include=haproxy bookworm (log /tmp/build-edge-proxy-image.log)"
start=$(date +%s)
debootstrap --variant=minbase --include=haproxy bookworm "$root" "$MIRROR" >/tmp/build-edge-proxy-image.log 2>&1 ||
  die "debootstrap failed; see /tmp/build-edge-proxy-image.log"
# Nothing in the image needs apt's lists or caches, nor the docs.
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* "$root"/usr/share/man/*
# sed reads to the end: head would close the pipe early and, with pipefail, fail the build (SIGPIPE).
version=$(chroot "$root" haproxy -v | sed -n 1p)
say "$version"
# haproxy -W: master-worker, PID 1 handles SIGTERM and SIGUSR2 (reload); -db: stay in the foreground.
# The configuration comes in HAPROXY_CONFIG (see shared/edge-proxy), so a container holds all it runs.
# shellcheck disable=SC2016 # $HAPROXY_CONFIG expands in the container, not here
cmd='["/bin/bash","-c","echo \"$HAPROXY_CONFIG\" >/run/haproxy.cfg && exec haproxy -W -db -f /run/haproxy.cfg"]'
tar -C "$root" --numeric-owner -cf - . |
  docker import \
    --change "CMD $cmd" \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change "LABEL edge-proxy.recipe=$RECIPE" \
    --message "edge proxy: $version (Debian bookworm)" \
    - "$IMAGE" >/dev/null
image_ok || die "$IMAGE: imported, but its recipe label is not $RECIPE"
echo "[build-edge-proxy-image] ready: $IMAGE (built in $(($(date +%s) - start)) s; $version; recipe $RECIPE)"
