#!/usr/bin/env bash
# Everything the test suite needs on this machine, installed and started when missing:
# a Docker engine with compose and the local test images, PostgreSQL and MariaDB on loopback, shellcheck.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bash "$here/ensure-tools.sh"
bash "$here/ensure-fault-tools.sh"
bash "$here/ensure-docker.sh"
bash "$here/build-test-images.sh"
bash "$here/build-pg-image.sh"
bash "$here/ensure-postgres.sh" >/dev/null
bash "$here/ensure-mariadb.sh" >/dev/null
