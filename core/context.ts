import { join } from 'node:path';
import type { Hooks } from './hooks.js';
import type { Output } from './output.js';
import { AuditLog } from './audit-log.js';
import { StateFile, type ReleaseState } from './state.js';
import { exec, type ExecOptions, type ExecResult } from './exec.js';
import type { Verb } from './phases.js';
import { Transfers } from './progress.js';

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
  /** The phase running now; `orchestrator` before the first and after the last. */
  phase: string;
  readonly hooks: Hooks;
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
  /** Options a plugin shares with others of the same run, by key. */
  readonly shared: Map<string, unknown>;
  /**
   * Asks the core to run the remaining phases in a new process once this phase is done, e.g.
   * because the pull brought new orchestrator code or config.
   */
  requestHandoff(reason: string): void;
  handoffReason?: string;
}

export interface ContextInit {
  verb: Verb | 'release';
  ticket: string;
  repoDir: string;
  dryRun: boolean;
  from?: string;
  local?: boolean;
  hooks: Hooks;
  out: Output;
  signal: AbortSignal;
}

export function workspacePaths(repoDir: string, ticket: string) {
  const workspaceDir = join(repoDir, '.asd', 'workspace');
  const releasesDir = join(workspaceDir, 'releases');
  return {
    workspaceDir,
    releasesDir,
    stateFile: join(releasesDir, `${ticket}.env`),
    logFile: join(releasesDir, `${ticket}.log`),
    lockFile: join(workspaceDir, 'release.lock'),
  };
}

export function createContext(init: ContextInit): RunContext {
  const paths = workspacePaths(init.repoDir, init.ticket);
  const stateFile = new StateFile(paths.stateFile);
  const failpointName = process.env.RELEASE_FAILPOINT;
  const context: RunContext = {
    ...init,
    local: init.local ?? false,
    workspaceDir: paths.workspaceDir,
    log: new AuditLog(paths.logFile, init.ticket, !init.dryRun),
    stateFile,
    state: undefined,
    phase: 'orchestrator',
    shared: new Map(),
    transfers: new Transfers(init.out),
    saveState() {
      if (init.dryRun || !context.state) return;
      stateFile.write(context.state, () => context.failpoint('state-before-rename'));
    },
    requireState() {
      if (!context.state) context.state = stateFile.read();
      return context.state;
    },
    exec(file, args, options = {}) {
      return exec(file, args, { cwd: init.repoDir, signal: init.signal, ...options });
    },
    requestHandoff(reason) {
      context.handoffReason ??= reason;
    },
    failpoint(step) {
      if (failpointName && failpointName === step) {
        init.out.warn(`failpoint ${step}: killing this process`);
        process.kill(process.pid, 'SIGKILL');
      }
    },
  };
  return context;
}
