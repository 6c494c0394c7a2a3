/**
 * Stable failure reasons: what went wrong, as a name that does not change when a message is
 * reworded. A ReleaseError carries one (given where it is thrown, else its code's default); the
 * `--json` error and outcome events, the notifications, the audit log and `release show` carry
 * it, and recovery playbooks match on it. Each reason belongs to one exit category (the ten
 * exit codes stay as documented), says in one line what happened, and has its docs entry in
 * docs/operations.md. `playbook` is the shipped playbook that handles it, or null where none is
 * wanted (the error's own hint is the whole answer); a test holds both true.
 */
import type { ErrorCode } from './errors.js';

export interface ReasonEntry {
  /** The exit category: the ReleaseError code, and so the exit code. */
  code: ErrorCode;
  /** What happened, in one line. */
  summary: string;
  /** Where an operator reads more: a section of docs/operations.md. */
  docs: string;
  /** The shipped playbooks for it (one per verb or phase it differs in); null where the error's hint is the whole answer. */
  playbook: string | readonly string[] | null;
}

export const REASONS = {
  UNCLASSIFIED: { code: 'PHASE_FAILED', summary: 'a step failed for a reason the orchestrator has no name for (read the message)', docs: 'docs/operations.md#exit-codes-at-a-glance', playbook: null },
  CLONE_REFUSED: { code: 'PHASE_FAILED', summary: 'the prod clone is not as a release needs it: local edits, untracked files, another branch, local commits, a diverged history', docs: 'docs/operations.md#prepare-refuses-the-clone-exit-1', playbook: null },
  ORCHESTRATOR_SOURCE_EDITED: { code: 'PHASE_FAILED', summary: "the orchestrator's own files were edited on the prod host", docs: 'docs/operations.md#prepare-refuses-the-clone-exit-1', playbook: 'release-orchestrator-source-drift' },
  ORIGIN_UNREACHABLE: { code: 'PHASE_FAILED', summary: 'git fetch could not reach the remote', docs: 'docs/operations.md#deadlines-and-outside-faults', playbook: 'release-origin-unreachable' },
  DEADLINE_PASSED: { code: 'PHASE_FAILED', summary: 'an external command ran past its deadline and was stopped', docs: 'docs/operations.md#deadlines-and-outside-faults', playbook: ['release-deadline-passed', 'release-revert-deadline-passed'] },
  ENGINE_DOWN: { code: 'PHASE_FAILED', summary: 'the Docker engine does not answer', docs: 'docs/operations.md#deadlines-and-outside-faults', playbook: 'release-docker-engine-down' },
  TICKET_SCRIPT_FAILED: { code: 'PHASE_FAILED', summary: "the ticket's own script exited non-zero", docs: 'docs/operations.md#ticket-script-failed-exit-1-in-ticket', playbook: null },
  HOOK_FAILED: { code: 'PHASE_FAILED', summary: 'a lifecycle hook (`hooks:` of a manifest or of the config) exited non-zero', docs: 'docs/operations.md#lifecycle-hooks', playbook: null },
  BAD_INPUT: { code: 'BAD_INPUT', summary: 'bad input or config: a ticket id, an option, a manifest, release.config.ts', docs: 'docs/operations.md#exit-codes-at-a-glance', playbook: null },
  STATE_FILE: { code: 'BAD_INPUT', summary: "the ticket's state file is missing, damaged or not this release's", docs: 'docs/operations.md#the-state-file-and-the-audit-log-exit-2', playbook: 'release-state-file' },
  PLAN_MOVED: { code: 'BAD_INPUT', summary: 'release-run --plan: HEAD, origin, a file that decides the release or the orchestrator moved since the plan, or it was applied already', docs: 'docs/operations.md#saved-plans---plan-out-and---plan', playbook: null },
  LATER_RELEASES: { code: 'BAD_INPUT', summary: 'later releases touched what this revert would restore', docs: 'docs/operations.md#revert-blocked-exit-8-and-older-releases-exit-2', playbook: 'release-revert-later-releases' },
  LOCK_HELD: { code: 'LOCKED', summary: 'another release, revert, prune or restore test holds the lock', docs: 'docs/operations.md#the-lock-exit-3', playbook: 'release-lock-held' },
  NOTHING_TO_RELEASE: { code: 'NOTHING_TO_RELEASE', summary: "HEAD already equals origin's main: someone pulled by hand", docs: 'docs/operations.md#nothing-to-release-exit-4', playbook: 'release-nothing-to-release' },
  NOTHING_LOCAL: { code: 'NOTHING_TO_RELEASE', summary: '--local: HEAD holds no commit beyond the upstream as last fetched', docs: 'docs/operations.md#the-practice-drill-on-a-dev-host---local', playbook: null },
  ALREADY_RELEASED: { code: 'NOTHING_TO_RELEASE', summary: "this ticket's release already went through", docs: 'docs/operations.md#nothing-to-release-exit-4', playbook: 'release-already-released' },
  NO_ACTION_PLUGIN: { code: 'DRIFT', summary: 'an action the release needs (build, redeploy, ...) has no plugin that carries it out for that service', docs: 'docs/plugins.md#the-hooks', playbook: null },
  UNCLASSIFIED_FILES: { code: 'DRIFT', summary: 'changed files match no classifier rule', docs: 'docs/operations.md#unclassified-files-exit-5-in-migrate', playbook: 'release-run-exit-5-with-drift' },
  DRIFT: { code: 'DRIFT', summary: 'a service is not what HEAD asks for after the release', docs: 'docs/operations.md#drift-after-migrate-exit-5-in-verify', playbook: 'release-verify-drift' },
  BACKUP_FAILED: { code: 'BACKUP_FAILED', summary: 'a backup, its check, or a restore failed', docs: 'docs/operations.md#backups-exit-6', playbook: ['release-backup-failed', 'release-restore-failed'] },
  DISK_FULL: { code: 'BACKUP_FAILED', summary: 'not enough disk space for the backups or restores (checked first, or the disk filled)', docs: 'docs/operations.md#disk-space-and-release-prune-exit-6', playbook: ['release-disk-full', 'release-restore-disk-full'] },
  RESTORE_TEST_STALE: { code: 'BACKUP_FAILED', summary: 'the services to back up have no recent restore test', docs: 'docs/operations.md#restore-tests-release-verify-backups-exit-6', playbook: 'release-restore-test-stale' },
  RESTORE_TEST_FAILED: { code: 'BACKUP_FAILED', summary: 'a backup failed its restore test', docs: 'docs/operations.md#restore-tests-release-verify-backups-exit-6', playbook: null },
  HEALTH_FAILED: { code: 'HEALTH_FAILED', summary: "a service's health probe failed", docs: 'docs/operations.md#health-probe-exit-7', playbook: 'release-verify-race' },
  WATCH_FAILED: { code: 'HEALTH_FAILED', summary: 'a service went bad in the watch window after verify: the release was reverted', docs: 'docs/operations.md#the-watch-window---watch', playbook: null },
  ROLLOUT_FAILED: { code: 'HEALTH_FAILED', summary: 'a rolling update failed: the new version never became healthy; the old one still serves', docs: 'docs/operations.md#rolling-update-failed-exit-7-in-migrate', playbook: null },
  REVERT_BLOCKED: { code: 'REVERT_BLOCKED', summary: "HEAD moved past the release, the revert conflicts, or the tree has edits", docs: 'docs/operations.md#revert-blocked-exit-8-and-older-releases-exit-2', playbook: 'release-revert-blocked' },
  ATOMIC_REVERT_FAILED: { code: 'ATOMIC_REVERT_FAILED', summary: 'an --atomic release failed, and its automatic revert failed too: the host is not back where it was', docs: 'docs/operations.md#atomic-releases---atomic', playbook: null },
  INTERRUPTED: { code: 'INTERRUPTED', summary: 'stopped by Ctrl-C or SIGTERM', docs: 'docs/operations.md#interrupted-exit-130', playbook: 'release-interrupted' },
} as const satisfies Record<string, ReasonEntry>;

export type Reason = keyof typeof REASONS;
export const REASON_NAMES = Object.keys(REASONS) as Reason[];

/** A code's reason when the thrower names none. */
export const DEFAULT_REASON: Record<ErrorCode, Reason> = {
  PHASE_FAILED: 'UNCLASSIFIED',
  BAD_INPUT: 'BAD_INPUT',
  LOCKED: 'LOCK_HELD',
  NOTHING_TO_RELEASE: 'NOTHING_TO_RELEASE',
  DRIFT: 'DRIFT',
  BACKUP_FAILED: 'BACKUP_FAILED',
  HEALTH_FAILED: 'HEALTH_FAILED',
  REVERT_BLOCKED: 'REVERT_BLOCKED',
  ATOMIC_REVERT_FAILED: 'ATOMIC_REVERT_FAILED',
  INTERRUPTED: 'INTERRUPTED',
};
