#!/usr/bin/env bash
# The runbook's three drills on a throwaway local platform: a bare origin, a dev clone where
# tickets are merged, and a prod clone where the operator types only `just release-run|revert`.
#   1. a release (ticket 1234 bumps a service's image tag)
#   2. a failing release (ticket 9999) and its revert
#   3. a release whose ticket script fails for a passing reason, resumed with --from=ticket
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
export RELEASE_ORCHESTRATOR_HOME=$(cd "$here/.." && pwd)
# just ships in the npm package rust-just-linux-x64 (the only platform package the registry here serves).
just="$RELEASE_ORCHESTRATOR_HOME/node_modules/rust-just-linux-x64/bin/just"
work=$(mktemp -d "${TMPDIR:-/tmp}/release-demo.XXXXXX")
trap 'rm -rf "$work"' EXIT
export GIT_AUTHOR_NAME=demo GIT_AUTHOR_EMAIL=demo@example.test GIT_COMMITTER_NAME=demo GIT_COMMITTER_EMAIL=demo@example.test

say() { printf '\n\033[1m== %s\033[0m\n' "$*" | { [ -n "${NO_COLOR:-}" ] || [ ! -t 1 ] && sed 's/\x1b\[[0-9;]*m//g' || cat; }; }
operator() { printf '$ %s\n' "$*"; (cd "$work/prod" && "$@"); }

merge_ticket() { # merge_ticket TICKET MESSAGE: commits what dev holds on a branch and merges it to origin/main
  (cd "$work/dev" && git checkout -q -b "feat/$1" && git add -A && git commit -q -m "$2" \
    && git checkout -q main && git merge -q --no-ff -m "Merge ticket $1" "feat/$1" && git push -q origin main)
}

say "A throwaway platform in $work"
git init -q --bare -b main "$work/origin.git"
git clone -q "$work/origin.git" "$work/dev" 2>/dev/null
cd "$work/dev"
git checkout -q -b main
mkdir -p packages/redmine releases
printf '.asd/\n' > .gitignore
cp "$here/platform.justfile" justfile
printf 'name: redmine\nimage: local/redmine:5.1.1\n' > packages/redmine/manifest.yaml
git add -A && git commit -q -m "platform with one service" && git push -q origin main
git clone -q "$work/origin.git" "$work/prod"

say "Drill 1: release 1234 (bump redmine's image tag)"
sed -i 's/5.1.1/5.1.2/' packages/redmine/manifest.yaml
merge_ticket 1234 "redmine 5.1.2"
operator "$just" release-run 1234
operator cat .asd/workspace/releases/1234.env
operator tail -n 5 .asd/workspace/releases/1234.log

say "Drill 2: release 9999 fails, then release-revert 9999 puts it back"
sed -i 's/5.1.2/5.1.3/' packages/redmine/manifest.yaml
printf '#!/bin/sh\necho "deliberate failure for the revert drill" >&2\nexit 1\n' > releases/9999-will-fail.sh
chmod +x releases/9999-will-fail.sh
merge_ticket 9999 "deliberate fail for the revert drill"
if operator "$just" release-run 9999; then echo "drill 2 should have failed" >&2; exit 1; fi
operator "$just" release-revert 9999
operator git log --oneline -3
operator grep image packages/redmine/manifest.yaml
# The revert commit exists only on prod until it is published, as release-revert says.
operator git push -q origin main
(cd "$work/dev" && git pull -q --ff-only origin main)

say "Drill 3: release 777's ticket script fails on a passing cause; resume with --from=ticket"
mkdir -p releases
printf '#!/bin/sh\n[ -f "%s/api-up" ] || { echo "the API is not reachable yet" >&2; exit 1; }\necho "data migrated"\n' "$work" > releases/777-migrate-data.sh
chmod +x releases/777-migrate-data.sh
merge_ticket 777 "ticket 777 data migration"
if operator "$just" release-run 777; then echo "drill 3 should have failed first" >&2; exit 1; fi
touch "$work/api-up"
operator "$just" release-run 777 --from=ticket

say "All three drills passed"
