#!/usr/bin/env bash
# ensure-tools.sh: the command-line tools the tests use besides docker and postgres.
# Idempotent; installs Debian packages only when a command is missing.
set -euo pipefail
missing=()
command -v shellcheck >/dev/null 2>&1 || missing+=(shellcheck)
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v sqlite3 >/dev/null 2>&1 || missing+=(sqlite3)
command -v setfattr >/dev/null 2>&1 || missing+=(attr) # backup-volume tests: setfattr/getfattr
command -v zstd >/dev/null 2>&1 || missing+=(zstd) # backup-volume: its default compressor
command -v setfacl >/dev/null 2>&1 || missing+=(acl) # volume fidelity test: setfacl/getfacl
[ ${#missing[@]} -eq 0 ] && exit 0
[ "$(id -u)" = 0 ] || { echo "[ensure-tools] ERROR: ${missing[*]} missing and not root to install them" >&2; exit 1; }
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q "${missing[@]}" >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 || true; apt-get install -y -q "${missing[@]}" >/dev/null; }
echo "[ensure-tools] installed ${missing[*]}" >&2
