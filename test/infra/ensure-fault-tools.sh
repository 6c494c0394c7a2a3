#!/usr/bin/env bash
# What the outside-fault tests need besides Docker and PostgreSQL: `ip` (a network namespace for
# the private Docker engine), `nsenter` and `runuser` (util-linux), `pgrep` (procps).
# Idempotent; installs Debian packages only when a command is missing.
set -euo pipefail
missing=()
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
command -v pgrep >/dev/null 2>&1 || missing+=(procps)
{ command -v nsenter && command -v runuser; } >/dev/null 2>&1 || missing+=(util-linux)
((${#missing[@]} == 0)) && exit 0
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q "${missing[@]}" >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 || true; apt-get install -y -q "${missing[@]}" >/dev/null; }
