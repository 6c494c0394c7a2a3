# The operator's entry points. Run them from the platform repo's folder, e.g.
#   just -f /opt/release-orchestrator/justfile release-run 1234
# or, simpler, from the platform's own justfile (`release init` writes one; demo/platform.justfile).
# Arguments are passed as "$@", never spliced into a shell line, so a hostile ticket id stays one argument.
# RELEASE_INVOKED_VIA tells the verbs how they were run, so the commands they print paste as they are.

set positional-arguments := true

bin := justfile_directory() / "dist/cli/bin"
via := quote("just -f " + quote(justfile()))

# release TICKET: prepare -> migrate -> ticket -> verify, halting on the first failure
[no-cd]
[no-exit-message]
release-run *ARGS:
    @RELEASE_INVOKED_VIA={{via}} node "{{bin}}/release-run.js" "$@"

# undo release TICKET: restore backups, revert in git, redeploy, verify
[no-cd]
[no-exit-message]
release-revert *ARGS:
    @RELEASE_INVOKED_VIA={{via}} node "{{bin}}/release-revert.js" "$@"

# the drift check: release --service=NAME
[no-cd]
[no-exit-message]
release *ARGS:
    @RELEASE_INVOKED_VIA={{via}} node "{{bin}}/release.js" "$@"

# the runbook's drills on a throwaway local platform
demo:
    npm run demo

# the whole test suite (installs and starts what the tests need)
test:
    npm test

# start-up and overhead beside the raw tools
bench:
    npm run bench
