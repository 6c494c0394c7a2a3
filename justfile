# The operator's entry points. Run them from the platform repo's folder, e.g.
#   just -f /opt/release-orchestrator/justfile release-run 1234
# or from a platform justfile that forwards to these bins (see demo/platform.justfile).
# Arguments are passed as "$@", never spliced into a shell line, so a hostile ticket id stays one argument.

set positional-arguments := true

bin := justfile_directory() / "dist/core/bin"

# release TICKET: prepare -> migrate -> ticket -> verify, halting on the first failure
[no-cd]
release-run *ARGS:
    @node "{{bin}}/release-run.js" "$@"

# undo release TICKET: restore backups, revert in git, redeploy, verify
[no-cd]
release-revert *ARGS:
    @node "{{bin}}/release-revert.js" "$@"

# the drift check: release --service=NAME
[no-cd]
release *ARGS:
    @node "{{bin}}/release.js" "$@"

# the runbook's drills on a throwaway local platform
demo:
    npm run demo

# the whole test suite (installs and starts what the tests need)
test:
    npm test

# start-up and overhead beside the raw tools
bench:
    npm run bench
