#!/usr/bin/env bash
# The runbook's drills on a throwaway local platform: a bare origin, a dev clone where tickets are
# merged, and a prod clone where the operator types only `just release-run|release-revert`.
# The service runs on the local Docker engine (image local/testsvc:1 and :2, built locally).
#   0. ticket 100 adds the service (its first deploy)
#   1. ticket 1234 bumps its image tag: a release
#   2. ticket 9999 breaks its health endpoint: verify fails, release-revert puts it back
#   3. ticket 777's script fails for a passing reason: resume with --from=ticket
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
orchestrator=$(cd "$here/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/release-demo.XXXXXX")
# The README's install, into a throwaway prefix: release-run, release-revert, release and just
# (from the npm package rust-just-linux-x64) on PATH, as on a prod host.
npm install -g --ignore-scripts --no-audit --no-fund --prefix "$work/prefix" "$orchestrator" >/dev/null
export PATH="$work/prefix/bin:$PATH"
just=just
service="redmine-demo-$$"
port=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
cleanup() {
  ids=$(docker ps -aq --filter "label=com.docker.compose.project=$service")
  [ -z "$ids" ] || docker rm -f -v $ids >/dev/null
  docker network rm "${service}_default" >/dev/null 2>&1 || true
  docker volume rm "${service}_data" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
export GIT_AUTHOR_NAME=demo GIT_AUTHOR_EMAIL=demo@example.test GIT_COMMITTER_NAME=demo GIT_COMMITTER_EMAIL=demo@example.test

bold() { if [ -t 1 ] && [ -z "${NO_COLOR:-}" ]; then printf '\n\033[1m== %s\033[0m\n' "$*"; else printf '\n== %s\n' "$*"; fi; }
operator() { printf '$ %s\n' "$*"; (cd "$work/prod" && "$@"); }
version() { printf 'GET /version -> %s\n' "$(curl -fsS "http://127.0.0.1:$port/version")"; }

merge_ticket() { # merge_ticket TICKET MESSAGE: what dev holds goes on a branch, merged into origin/main
  (cd "$work/dev" && git checkout -q -b "feat/$1" && git add -A && git commit -q -m "$2" \
    && git checkout -q main && git merge -q --no-ff -m "Merge ticket $1" "feat/$1" && git push -q origin main)
}

manifest() { # manifest TAG ENDPOINT
  printf 'name: %s\nimage: local/testsvc:%s\nhealth:\n  url: http://127.0.0.1:%s\n  endpoint: %s\n  timeout: 5s\n' "$service" "$1" "$port" "$2"
  printf 'backup:\n  - type: volume\n    volume: %s_data\n' "$service"
}
# The service's data: its docker volume, seen through a throwaway container of the same image.
data() { printf '$ (the files in volume %s_data)\n' "$service"; docker run --rm -v "${service}_data:/data" local/testsvc:1 sh -c 'cd /data && for f in $(find . -type f | sort); do echo "$f: $(cat "$f")"; done'; }

bold "A throwaway platform in $work, service $service on 127.0.0.1:$port"
git init -q --bare -b main "$work/origin.git"
git clone -q "$work/origin.git" "$work/dev" 2>/dev/null
cd "$work/dev"
git checkout -q -b main
release init   # the platform's justfile (its recipes run the installed verbs), .asd/ ignored, ...
git add -A && git commit -q -m "an empty platform" && git push -q origin main
git clone -q "$work/origin.git" "$work/prod"

bold "Drill 0: release 100 adds $service (its first deploy)"
mkdir -p "packages/$service" releases
manifest 1 /health > "packages/$service/manifest.yaml"
cat > "packages/$service/compose.yaml" <<YAML
services:
  app:
    image: \${IMAGE}
    ports:
      - "127.0.0.1:$port:8080"
    volumes:
      - data:/data
volumes:
  data:
YAML
merge_ticket 100 "add $service"
operator "$just" release-run 100
version
docker run --rm -v "${service}_data:/data" local/testsvc:1 sh -c 'mkdir -p /data/files && echo "issue 1: printer jam" > /data/files/issues.txt'
data

bold "Drill 1: release 1234 bumps $service's image tag"
manifest 2 /health > "packages/$service/manifest.yaml"
merge_ticket 1234 "$service on image 2"
operator "$just" release-run 1234
version
operator "$just" release --service="$service"
operator cat .asd/workspace/releases/1234.env
operator tail -n 6 .asd/workspace/releases/1234.log

bold "Drill 2: release 9999 changes the data and breaks the health endpoint; verify fails; release-revert 9999 puts data, code and service back"
manifest 1 /nonexistent > "packages/$service/manifest.yaml"
cat > releases/9999-migrate-issues.sh <<SCRIPT
#!/bin/sh
docker run --rm -v "${service}_data:/data" local/testsvc:1 sh -c 'echo "MIGRATED" > /data/files/issues.txt && echo new > /data/files/added-by-9999.txt'
SCRIPT
chmod +x releases/9999-migrate-issues.sh
merge_ticket 9999 "deliberate fail for the revert drill"
if operator "$just" release-run 9999; then echo "drill 2 should have failed" >&2; exit 1; fi
version
data
operator "$just" release-revert 9999
version
data
operator "$just" release --service="$service"
operator git log --oneline -3
# The revert commit exists only on prod until it is published, as release-revert says.
operator git push -q origin main
(cd "$work/dev" && git pull -q --ff-only origin main)

bold "Drill 3: release 777's ticket script fails on a passing cause; resume with --from=ticket"
mkdir -p releases
printf '#!/bin/sh\n[ -f "%s/api-up" ] || { echo "the API is not reachable yet" >&2; exit 1; }\necho "data migrated"\n' "$work" > releases/777-migrate-data.sh
chmod +x releases/777-migrate-data.sh
merge_ticket 777 "ticket 777 data migration"
if operator "$just" release-run 777; then echo "drill 3 should have failed first" >&2; exit 1; fi
touch "$work/api-up"
operator "$just" release-run 777 --from=ticket

bold "All drills passed"
