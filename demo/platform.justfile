# The release verbs of this platform repo, run from anywhere inside it:
#   just release-run TICKET      just release-revert TICKET      just release --service=NAME
# The recipes run the verbs installed on PATH (see the orchestrator's README, "Install on a prod
# host"). RELEASE_INVOKED_VIA tells the verbs they run through just, so every command they print
# starts with `just` and can be pasted as it is.
set positional-arguments := true

export RELEASE_INVOKED_VIA := "just"

# release TICKET: prepare -> migrate -> ticket -> verify, halting on the first failure
[no-exit-message]
release-run *ARGS:
    @release-run "$@"

# undo release TICKET: restore backups, revert in git, redeploy, verify
[no-exit-message]
release-revert *ARGS:
    @release-revert "$@"

# the drift check (release --service=NAME), or release init
[no-exit-message]
release *ARGS:
    @release "$@"
