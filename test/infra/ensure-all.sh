#!/usr/bin/env bash
# Everything the test suite needs on this machine, installed and started when missing:
# the tested Docker (Engine 26 + Compose v2) with the local test images, the legacy pair (Engine
# 20.10 + docker-compose 1.29) in a network namespace of its own, PostgreSQL and MariaDB on
# loopback, shellcheck.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bash "$here/ensure-tools.sh"
bash "$here/ensure-fault-tools.sh"
bash "$here/ensure-docker.sh"
# A real Redmine for the notify-redmine tests: packages first (apt is not shared well), then it
# seeds and starts while the images build.
bash "$here/ensure-redmine.sh" --packages
bash "$here/ensure-redmine.sh" >/dev/null &
redmine=$!
bash "$here/build-test-images.sh"
bash "$here/build-pg-image.sh"
bash "$here/ensure-postgres.sh" >/dev/null
bash "$here/ensure-mariadb.sh" >/dev/null
bash "$here/ensure-swarm.sh" >/dev/null
bash "$here/../../scripts/build-edge-proxy-image.sh"
bash "$here/ensure-docker-legacy.sh" >/dev/null
wait "$redmine" || { echo "[ensure-all] test/infra/ensure-redmine.sh failed" >&2; exit 1; }
