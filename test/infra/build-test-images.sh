#!/usr/bin/env bash
# build-test-images.sh: build the local test images local/testsvc:1 and
# local/testsvc:2 without any registry, from Debian's busybox-static.
#
#   bash test/infra/build-test-images.sh [--verify] [--force]
#
# Each image is a tiny rootfs (static busybox + applet symlinks + /www) made with
# `docker import`. It runs `httpd -f -p 8080 -h /www` and serves
#   /health   -> ok
#   /version  -> the tag (1 or 2)
# (bodies without a trailing newline). /data exists for volume mounts.
#
# Idempotent: an image whose label testsvc.recipe matches this script's recipe is
# kept; otherwise it is (re)built and then verified by running a container on a
# published 127.0.0.1 port and fetching /version. --verify also verifies kept
# images; --force rebuilds. Needs a running engine (test/infra/ensure-docker.sh).
# Exit: 0 images ready; 1 a build or a check failed.
set -euo pipefail

REPO=${TESTSVC_REPO:-local/testsvc}
TAGS=${TESTSVC_TAGS:-"1 2"}
VERIFY=0
FORCE=0
for a in "$@"; do
  case $a in
    --verify) VERIFY=1 ;;
    --force) FORCE=1 ;;
    -h | --help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "usage: $0 [--verify] [--force]" >&2; exit 2 ;;
  esac
done
export DEBIAN_FRONTEND=noninteractive

say() { echo "[build-test-images] $*" >&2; }
die() { echo "[build-test-images] ERROR: $*" >&2; exit 1; }

timeout 15 docker info >/dev/null 2>&1 || die "no Docker engine answers; run test/infra/ensure-docker.sh first"

# one run at a time (two concurrent imports of the same tag would race)
exec 9>/tmp/build-test-images.lock
flock -w 120 9 || die "another build-test-images.sh holds /tmp/build-test-images.lock"

# ---- a static busybox ---------------------------------------------------------
# Prefer the installed busybox-static. If it is missing: apt-get install it, unless
# the (dynamic) busybox package is installed, which it would replace: then only
# download the .deb and unpack it into a cache folder.
BB_CACHE=/var/cache/testsvc-busybox
find_busybox() {
  if dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'install ok installed'; then
    BB=/bin/busybox
    BB_VERSION=$(dpkg-query -W -f='${Version}' busybox-static)
  elif [ -x "$BB_CACHE/bin/busybox" ] && [ -s "$BB_CACHE/VERSION" ]; then
    BB=$BB_CACHE/bin/busybox
    BB_VERSION=$(cat "$BB_CACHE/VERSION")
  else
    return 1
  fi
}
apt_known() {
  local c
  c=$(apt-cache policy busybox-static 2>/dev/null | awk '/Candidate:/ {print $2}')
  [ -n "$c" ] && [ "$c" != "(none)" ]
}
if ! find_busybox; then
  apt_known || apt-get update >/tmp/build-test-images-apt.log 2>&1 || say "apt-get update reported errors; trying anyway"
  if dpkg-query -W -f='${Status}' busybox 2>/dev/null | grep -q 'install ok installed'; then
    say "busybox (dynamic) is installed; unpacking busybox-static into $BB_CACHE instead of installing it"
    d=$(mktemp -d)
    (cd "$d" && apt-get download busybox-static >>/tmp/build-test-images-apt.log 2>&1) ||
      die "apt-get download busybox-static failed; see /tmp/build-test-images-apt.log"
    rm -rf "$BB_CACHE" && mkdir -p "$BB_CACHE"
    dpkg-deb -x "$d"/busybox-static_*.deb "$BB_CACHE"
    dpkg-deb -f "$d"/busybox-static_*.deb Version >"$BB_CACHE/VERSION"
    rm -rf "$d"
  else
    say "apt-get install -y busybox-static"
    apt-get install -y --no-install-recommends busybox-static >>/tmp/build-test-images-apt.log 2>&1 ||
      die "apt-get install busybox-static failed; see /tmp/build-test-images-apt.log"
  fi
  find_busybox || die "no static busybox after installing busybox-static"
fi
# must be static: the image has no libc
if ldd "$BB" >/dev/null 2>&1; then die "$BB is dynamically linked; need busybox-static"; fi

# The recipe label: changes whenever this script or busybox changes.
RECIPE=$({ cat "$0"; echo "$BB_VERSION"; } | sha256sum | cut -c1-16)

image_ok() { # image_ok TAG: the image exists and was built by this recipe for TAG
  local got
  got=$(docker image inspect --format '{{index .Config.Labels "testsvc.recipe"}} {{index .Config.Labels "testsvc.version"}}' "$REPO:$1" 2>/dev/null) || return 1
  [ "$got" = "$RECIPE $1" ]
}

# ---- build ----------------------------------------------------------------------
APPLETS="sh ash httpd tar gzip gunzip sleep cat echo ls mkdir rm cp mv ln chmod chown
  touch env id ps kill true false test [ grep sed awk head tail wc date du df find
  wget nc hostname uname printf sort uniq tee xargs which stat sync"

build() { # build TAG
  local tag=$1 root
  root=$(mktemp -d /tmp/testsvc-rootfs.XXXXXX)
  mkdir -p "$root"/{bin,www,data,tmp,etc,root}
  chmod 1777 "$root/tmp"
  cp "$BB" "$root/bin/busybox"
  local a
  for a in $APPLETS; do ln -s busybox "$root/bin/$a"; done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$root/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
  printf 'ok' >"$root/www/health"
  printf '%s' "$tag" >"$root/www/version"
  # PID 1 is sh, not httpd: httpd has no SIGTERM handler and PID 1 ignores
  # unhandled signals, so `docker stop` / `compose down` would wait 10 s and then
  # SIGKILL. The trap makes stop instant; httpd still runs in the foreground (-f).
  local cmd='["/bin/sh","-c","trap \"exit 0\" TERM INT; httpd -f -p 8080 -h /www & wait"]'
  tar -C "$root" --numeric-owner --owner=0 --group=0 -cf - . |
    docker import \
      --change "CMD $cmd" \
      --change 'ENV PATH=/bin' \
      --change 'WORKDIR /' \
      --change 'EXPOSE 8080' \
      --change "LABEL testsvc.version=$tag testsvc.recipe=$RECIPE" \
      --message "testsvc $tag (busybox-static $BB_VERSION)" \
      - "$REPO:$tag" >/dev/null
  rm -rf "$root"
}

# ---- verify ---------------------------------------------------------------------
http_get() { # http_get URL: print the body; non-zero on error or non-2xx
  if command -v curl >/dev/null 2>&1; then
    curl -fsS --max-time 3 "$1"
  elif command -v node >/dev/null 2>&1; then
    node -e 'fetch(process.argv[1], { signal: AbortSignal.timeout(3000) })
      .then(async (r) => { if (!r.ok) process.exit(1); process.stdout.write(await r.text()); })
      .catch(() => process.exit(1));' "$1"
  else
    "$BB" wget -q -T 3 -O - "$1"
  fi
}

verify() { # verify TAG: run it on a free 127.0.0.1 port, GET /version and /health
  local tag=$1 name="testsvc-verify-$tag-$$" port body="" health="" i
  docker run -d --name "$name" -p 127.0.0.1::8080 "$REPO:$tag" >/dev/null
  # shellcheck disable=SC2064
  trap "docker rm -f '$name' >/dev/null 2>&1 || true" EXIT
  port=$(docker port "$name" 8080/tcp | sed -n 's/^127\.0\.0\.1:\([0-9]*\)$/\1/p' | head -n1)
  [ -n "$port" ] || { docker rm -f "$name" >/dev/null; die "$REPO:$tag: no published port"; }
  for ((i = 0; i < 40; i++)); do
    body=$(http_get "http://127.0.0.1:$port/version" 2>/dev/null) && break
    sleep 0.25
  done
  health=$(http_get "http://127.0.0.1:$port/health" 2>/dev/null) || true
  docker rm -f "$name" >/dev/null
  trap - EXIT
  [ "$body" = "$tag" ] || die "$REPO:$tag: GET /version on 127.0.0.1:$port gave '${body}', want '$tag'"
  [ "$health" = ok ] || die "$REPO:$tag: GET /health gave '${health}', want 'ok'"
  say "verified $REPO:$tag: /version=$body /health=$health (127.0.0.1:$port)"
}

built=() kept=()
for tag in $TAGS; do
  if [ $FORCE = 0 ] && image_ok "$tag"; then
    kept+=("$tag")
    [ $VERIFY = 0 ] || verify "$tag"
  else
    say "building $REPO:$tag"
    build "$tag"
    image_ok "$tag" || die "$REPO:$tag: built, but its labels are not as expected"
    verify "$tag"
    built+=("$tag")
  fi
done
echo "[build-test-images] ready: $(for t in $TAGS; do printf '%s:%s ' "$REPO" "$t"; done)(built: ${built[*]:-none}; kept: ${kept[*]:-none}; recipe $RECIPE)"
