/** What `release init` writes into a platform repo. */

/** The platform's justfile: its recipes run the verbs installed on PATH (README, "Install on a prod host"). */
export const JUSTFILE = `# The release verbs of this platform repo, run from anywhere inside it:
#   just release-run TICKET      just release-revert TICKET      just release --service=NAME
# The recipes run the verbs installed on PATH (see the orchestrator's README, "Install on a prod
# host"). RELEASE_INVOKED_VIA tells the verbs they run through just, so every command they print
# starts with \`just\` and can be pasted as it is.
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
`;

export const CONFIG = `// This platform repo's release config. release-run and release-revert read it as it is at the
// release's MERGE_SHA, so a rule and the files it classifies ship in one merge. Without this file
// the orchestrator's reference config applies; this one starts from it and adds to it.
// See the orchestrator's docs/configuration.md and docs/plugins.md.
export default ({ defaultPlugins, builtins }) => ({
  plugins: [
    // Every built-in phase, classifier rule, runtime and backup strategy. Its options, all
    // optional: remote and branch (default 'origin', 'main'), composeCommand (e.g.
    // ['docker-compose']; found at start when absent), backupConcurrency (services backed up at
    // once, default 2). An unknown option is an error.
    ...defaultPlugins(),

    // A classifier rule. A changed file that no rule knows stops migrate with exit 5, before any
    // service is touched. This one says files under dashboards/ need no action on this host:
    // builtins.globRule({ name: 'grafana-dashboards', patterns: ['dashboards/**'], kind: 'dashboard' }),

    // A backup strategy is a plugin that taps hooks.backup.for(TYPE) (and restore, checkBackup);
    // a service's manifest.yaml then lists  backup: [{ type: TYPE, ... }]. Built in: volume,
    // postgres, sqlite, e.g.
    //   backup:
    //     - { type: volume, volume: NAME_data }
    //     - { type: postgres, url: "postgres://USER@127.0.0.1:5432/DB" }   # password: .pgpass
    // Your own, e.g. for redis (docs/plugins.md shows a whole one):
    // { name: 'backup-redis', apply({ hooks }) { hooks.backup.for('redis').tapPromise('backup-redis', async (request, context) => ({ files: [], bytes: 0 })); } },
  ],
});
`;

export const PLAYBOOKS_README = `# Recovery playbooks

A failed release prints every playbook here (and the orchestrator's own) whose \`matches:\` fit the
failure: the cause, the steps and the exact next command. Add one as \`release-NAME.yaml\` once a
failure is understood; the orchestrator's docs/operations.md ("Writing a playbook") shows the
format. A playbook here with the id of a shipped one replaces it.
`;

export function exampleManifest(name: string): string {
  return `# The service ${name}: its compose file is compose.yaml beside this file; its image is \${IMAGE}.
name: ${name}
image: local/${name}:1          # the image to run: build or load it on this host first
health:
  url: http://127.0.0.1:18080
  endpoint: /health
  timeout: 60s
backup:
  - type: volume
    volume: ${name}_data        # compose names the volume "data" of project ${name} ${name}_data
`;
}

export function exampleCompose(): string {
  return `services:
  app:
    image: \${IMAGE}
    ports:
      - "127.0.0.1:18080:8080"
    volumes:
      - data:/data
volumes:
  data:
`;
}
