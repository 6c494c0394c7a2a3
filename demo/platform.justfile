# A platform repo's justfile: forwards the two verbs (and the drift check) to the orchestrator.
set positional-arguments := true

orchestrator := env_var("RELEASE_ORCHESTRATOR_HOME")

release-run *ARGS:
    @node "{{orchestrator}}/dist/core/bin/release-run.js" "$@"

release-revert *ARGS:
    @node "{{orchestrator}}/dist/core/bin/release-revert.js" "$@"

release *ARGS:
    @node "{{orchestrator}}/dist/core/bin/release.js" "$@"
