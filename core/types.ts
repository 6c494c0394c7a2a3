/**
 * The orchestrator's domain types: what hooks are called with and return (a changed file, an
 * action, a backup request, the run's context, ...). The hook table itself is core/hooks.ts.
 */
import type { Hooks } from './hooks.js';
import type { Output } from './output.js';
import type { AuditLog } from './audit-log.js';
import type { StateFile, ReleaseState } from './state.js';
import type { ExecOptions, ExecResult } from './exec.js';
import type { Verb } from './phases.js';
import type { Transfers } from './progress.js';
import type { OutcomeFields } from './events.js';

/** A path of the BASE..MERGE diff. */
export interface ChangedFile {
  path: string;
  /** The diff's status letter: A, M, D, R (renamed from `from`), ... */
  status: string;
  from?: string;
}

/** A step that converges a service; the migrate plan and the drift check are lists of these. */
export interface Action {
  service: string;
  /** e.g. `build`, `redeploy`, `recreate`, `remove`, `stop`, `start`: the key of `hooks.act`. */
  kind: string;
  /** Why, in words an operator reads: "image local/web:1 -> local/web:2". */
  reason: string;
  /** The parts of the service it concerns (e.g. the containers of one service); all of them when absent. */
  targets?: string[];
  /**
   * On a redeploy: the parts replaced even when their config is unchanged (a file they mount
   * changed in the same release), so that each is replaced once, not redeployed and then recreated.
   */
  recreate?: string[];
}

/**
 * The release's diff as classifier rules see it: the changed files and the repo's files at the
 * commit being released, read synchronously (the runner of the rules loads them on demand).
 */
export interface DiffView {
  readonly base: string;
  readonly merge: string;
  readonly files: readonly ChangedFile[];
  /** A file's text at `merge`, or undefined when it does not exist there. */
  read(path: string): string | undefined;
  /** Loads several files at once, so rules that need many pay for one read. */
  prefetch(paths: readonly string[]): void;
  /** The names of the entries of a folder at `merge` (none when it does not exist). */
  list(folder: string): string[];
}

/** What a classifier rule says of one changed path. */
export interface Classification {
  /** e.g. manifest, build-context, docs, ticket-script. */
  kind: string;
  /** The rule (plugin) that said it. */
  rule: string;
  service?: string;
  actions: Action[];
}

export interface BackupRequest {
  service: string;
  /** The manifest's `backup:` entry, as written; the strategy's plugin validates it. */
  entry: Record<string, unknown> & { type: string };
  /** This backup's folder: `.asd/workspace/backups/<svc>/<YYYYMMDD_HHMMSS>/`. */
  dir: string;
  /** The entry's position in the manifest, so two entries of one type get distinct files. */
  index: number;
  /** The manifest the entry comes from, for messages: `packages/<svc>/manifest.yaml`. */
  manifest: string;
  /** The strategy's own size estimate (hooks.sizeBackup), when it has one: progress shows percent and ETA. */
  expectedBytes?: number;
}

export interface BackupResult {
  /** Files written, relative to the backup folder. */
  files: string[];
  bytes: number;
}

export interface RestoreRequest extends BackupRequest {}

/** What a strategy can tell of an entry's data since its backup: in words, and whether it is there at all. */
export interface WritesSince {
  /** E.g. `3 of 40 files and folders modified since the backup`. */
  words: string;
  /** The data is not there now (the release removed it): a restore replaces nothing, and there is nothing to back up first. */
  absent?: boolean;
}

/** What a restore would replace: the data of a backup's entry as it is now, against the backup's time. */
export interface WritesSinceRequest extends RestoreRequest {
  /** When the backup was taken. */
  since: Date;
}

/** Room a step needs on one of this host's filesystems before it starts (e.g. a restore's staging copy). */
export interface SpaceNeed {
  /** A folder, or where one will be made: the space is checked on the filesystem that holds it. */
  path: string;
  bytes: number;
  /** What it is for, in words an operator reads: "staging copy of web path /srv/web". */
  what: string;
}

/**
 * A restore test of one backup entry (`hooks.testRestore`): restore it into a throwaway target
 * and check what came back, never touching the service's own data.
 */
export interface RestoreTestRequest extends RestoreRequest {
  /**
   * An empty folder (0700) of this test alone, on the workspace's filesystem: a strategy extracts
   * or copies into it. The caller removes it when the test ends, and any a killed run left.
   */
  scratchDir: string;
}

/** What a passed restore test proved, in words an operator reads: "1,204 files and folders match the archive". */
export interface RestoreTestResult {
  words: string;
}

/** One backup entry's restore test, as `release verify-backups` reports and records it. */
export interface RestoreTestOutcome {
  index: number;
  type: string;
  /** `untested`: its strategy has no restore test (only its checksum was checked). */
  outcome: 'passed' | 'failed' | 'untested';
  words: string;
}

/** One backup folder's restore tests. */
export interface VerifiedBackup {
  service: string;
  /** The folder's stamp, YYYYMMDD_HHMMSS. */
  at: string;
  dir: string;
  /** The ticket whose release (or revert) took it. */
  ticket: string;
  outcome: 'passed' | 'failed' | 'untested';
  entries: RestoreTestOutcome[];
  /** When the test ran, ISO 8601 UTC. */
  tested: string;
}

/** `release verify-backups`: which backups to test (none set: the newest of every service); taps fill `results`. */
export interface VerifyBackupsRequest {
  ticket?: string;
  service?: string;
  results: VerifiedBackup[];
}

/** `release prune`: taps remove the backups of old releases and count what they removed. */
export interface PruneRequest {
  /** Keep the backups of the newest N releases; undefined: the config's default. */
  keep?: number;
  /** Backup folders removed (or, in a dry run, that would be). */
  removed: string[];
  /** Bytes freed (or that would be). */
  freedBytes: number;
}

/**
 * A command to run inside one part of a service, wherever its runtime runs it (`hooks.execIn`):
 * e.g. a database's dump tool in the part `db` of platform service `redmine`.
 */
/** One container or task of a service as `release status` shows it. */
export interface RunningPart {
  /** The container's or swarm service's name. */
  name: string;
  image: string;
  /** The engine's id of that image, when it knows it (`sha256:...`). */
  imageId?: string;
  /** `running`, `exited`, `2/2 running`, ... */
  state: string;
  /** Whether it runs as it should (a stopped container, a task short: false). */
  ok: boolean;
  /** What else an operator should know of it: `not in compose.yaml`, `edge proxy`. */
  note?: string;
}

/** A saved plan as a reviewer reads it (plugins/plan writes the whole plan to `file`). */
export interface PlanSummary {
  file: string;
  baseSha: string;
  mergeSha: string;
  /** One line per action: `redeploy web: packages/web/manifest.yaml changed`. */
  actions: string[];
  /** The command that runs it as reviewed. */
  command: string;
}

/** The moments a lifecycle hook (`hooks:` of a manifest or of the config) can run at. */
export const LIFECYCLE_EVENTS = ['pre-deploy', 'post-deploy', 'pre-backup', 'post-backup', 'pre-revert', 'post-revert'] as const;
export type LifecycleEvent = (typeof LIFECYCLE_EVENTS)[number];

/** One moment of `hooks.lifecycle`: a service's (its manifest's hooks), or the whole repo's (the config's) when `service` is absent. */
export interface LifecycleMoment {
  event: LifecycleEvent;
  service?: string;
}

/** What one check of the watch window found for one service at one moment. */
export interface WatchSample {
  /** The check, e.g. `http GET http://127.0.0.1:8080/health`, or a platform plugin's name. */
  check: string;
  /** `inconclusive`: it could not tell (a timeout): reported, and counted on its own. */
  result: 'pass' | 'fail' | 'inconclusive';
  /** What it saw: `HTTP 503`, `ECONNREFUSED`, `error rate 4.2%`. */
  detail: string;
}

export interface ExecInRequest {
  /** The platform service (`packages/<svc>/`). */
  service: string;
  /** The part of it to run in, as the service's runtime names its parts. */
  target: string;
  /** The program and its arguments: an array, never a shell string. */
  argv: string[];
  /** The OS user to run as inside (e.g. for the tool's local authentication); default: the runtime's. */
  user?: string;
  /** Set in the command's environment. Visible to whoever can list the runtime's processes: never a secret. */
  env?: Record<string, string>;
  /** Small input, as a string. */
  input?: string;
  /** Feed the command's stdin from this stream. */
  stdinFrom?: NodeJS.ReadableStream;
  /** Send the command's stdout, unbuffered, through this stream. */
  stdoutTo?: NodeJS.WritableStream;
  /** The command may exit before reading all of stdinFrom (e.g. a tool that lists an archive reads only its head). */
  stdinMayStopEarly?: boolean;
  /** Past it the command is stopped (see ExecOptions.deadlineMs); the runtime passes it on. */
  deadlineMs?: number;
  deadlineName?: string;
}

/** What one run of a verb knows; passed to every hook. */
export interface RunContext {
  readonly verb: Verb | 'release';
  readonly ticket: string;
  /** The platform repo being released. */
  readonly repoDir: string;
  /** `.asd/workspace` of that repo. */
  readonly workspaceDir: string;
  readonly dryRun: boolean;
  /** The phase the run started from (`--from`), if not the first. */
  readonly from?: string;
  /**
   * `--local`: release what this clone already holds beyond the upstream it last saw, without
   * reaching the remote (a dev host's practice drill).
   */
  readonly local: boolean;
  /** `release-revert --code-only`: revert the release's commits and redeploy; restore no data. */
  readonly codeOnly: boolean;
  /** `release-revert --undo`: put back what the release's last revert replaced (data, code, services). */
  readonly undo: boolean;
  /** `release-revert --without-pre-revert-backup`: restore without backing up the data it replaces. */
  readonly withoutPreRevertBackup: boolean;
  /** `release-run --watch=DURATION` (ms): the watch window after verify, for every released service. */
  readonly watchMs?: number;
  /** `release-run --dry-run --plan-out FILE`: where the dry run writes its plan. */
  readonly planOut?: string;
  /** `release-run --plan FILE`: the reviewed plan the run must match, or it refuses (plugins/plan reads it). */
  readonly planFile?: string;
  /** The phase running now; `orchestrator` before the first and after the last. */
  phase: string;
  /** The hooks of the config in force; `useConfigAt` swaps them for another commit's. */
  readonly hooks: Hooks;
  /**
   * Loads the platform's config as `commit` holds it and makes its hooks the run's: the config
   * that governs a release is the one it releases, in every phase. A no-op where the application
   * gives no loader (tests of a single plugin).
   */
  useConfigAt(commit: string): Promise<void>;
  readonly out: Output;
  readonly log: AuditLog;
  readonly stateFile: StateFile;
  /** The release's state, in memory; `saveState()` persists it (never in a dry run). */
  state?: ReleaseState;
  saveState(): void;
  /** The state, which must exist by now (prepare has run or --from loaded it). */
  requireState(): ReleaseState;
  /** Runs a command in the repo by default, stopped when the run is interrupted. */
  exec(file: string, args: readonly string[], options?: ExecOptions): Promise<ExecResult>;
  readonly signal: AbortSignal;
  /** Failpoints for crash tests: a no-op unless RELEASE_FAILPOINT names this step. */
  failpoint(step: string): void;
  /** Progress lines (bytes and rate) for long transfers such as backups. */
  readonly transfers: Transfers;
  /**
   * Asks the core to run the remaining phases in a new process once this phase is done, e.g.
   * because the pull brought new orchestrator code or config.
   */
  requestHandoff(reason: string): void;
  handoffReason?: string;
  /**
   * The fields of the run's final `outcome` event (core/events.ts), set before `done`/`failed`
   * run, so a notifier posts what `--json` prints: `context.out.events.build('orchestrator', 'outcome', context.outcome)`.
   */
  outcome?: OutcomeFields;
}

/** `release init`: taps write what a platform repo needs (never overwriting) and say what. */
export interface InitResult {
  /** `--example NAME`: a first service to write. */
  example?: string;
  /** Paths written, relative to the repo. */
  written: string[];
  /** Paths that existed and were left as they were. */
  kept: string[];
}
