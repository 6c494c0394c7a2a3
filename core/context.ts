import { join } from 'node:path';
import type { Hooks, RunContext } from './hooks.js';
import type { Output } from './output.js';
import { AuditLog } from './audit-log.js';
import { StateFile } from './state.js';
import { exec, LEFTOVER_GRACE_MS, type ExecOptions } from './exec.js';
import type { Verb } from './phases.js';
import { Transfers } from './progress.js';
import { requirePhasePlugins } from './phase-check.js';

export type { RunContext } from './hooks.js';

export interface ContextInit {
  verb: Verb | 'release';
  ticket: string;
  repoDir: string;
  dryRun: boolean;
  from?: string;
  local?: boolean;
  codeOnly?: boolean;
  undo?: boolean;
  withoutPreRevertBackup?: boolean;
  /** `release-run --watch=DURATION`, in ms. */
  watchMs?: number;
  /** `release-run --dry-run --plan-out FILE`: where the dry run writes its plan. */
  planOut?: string;
  /** `release-run --plan FILE`: the reviewed plan this run must match (plugins/plan reads it). */
  planFile?: string;
  hooks: Hooks;
  out: Output;
  signal: AbortSignal;
  /** The application's config loader, for `useConfigAt`. */
  loadHooksAt?: (commit: string) => Promise<Hooks>;
  /** false for a command that is no ticket's run (prune, verify-backups): it writes no audit log of its own. */
  auditLog?: boolean;
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
  let loadedAt: string | undefined;
  const context: RunContext = {
    ...init,
    local: init.local ?? false,
    codeOnly: init.codeOnly ?? false,
    undo: init.undo ?? false,
    withoutPreRevertBackup: init.withoutPreRevertBackup ?? false,
    workspaceDir: paths.workspaceDir,
    log: new AuditLog(paths.logFile, init.ticket, !init.dryRun && init.auditLog !== false, (phase, event, fields) => init.out.events.emit(phase, event, fields)),
    stateFile,
    state: undefined,
    phase: 'orchestrator',
    transfers: new Transfers(init.out),
    saveState() {
      if (init.dryRun || !context.state) return;
      stateFile.write(context.state, () => context.failpoint('state-before-rename'));
    },
    requireState() {
      if (!context.state) context.state = stateFile.read();
      return context.state;
    },
    async exec(file, args, options = {}) {
      const result = await exec(file, args, { cwd: init.repoDir, signal: init.signal, ...options });
      if (result.leftovers.length > 0) {
        init.out.warn(`${result.command.slice(0, 200)} exited ${result.exitCode} but left ${result.leftovers.length} process(es) running past ${LEFTOVER_GRACE_MS / 1000}s: ${result.leftovers.join('; ')}; stopped them, as a step's processes end with it (run a lasting process as a service instead)`);
        context.log.event(context.phase, 'leftovers-stopped', { command: file, count: result.leftovers.length });
      }
      return result;
    },
    async useConfigAt(commit) {
      if (!init.loadHooksAt || loadedAt === commit) return;
      const hooks = await init.loadHooksAt(commit);
      // The config the release is governed by from here on must run every phase too.
      if (init.verb !== 'release') requirePhasePlugins(hooks, init.verb, `release.config.ts at ${commit.slice(0, 12)}`);
      (context as { hooks: Hooks }).hooks = hooks;
      loadedAt = commit;
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

/** How long each command of a cleanup may run: removing what a step made is quick, or it is stuck. */
export const CLEANUP_DEADLINE_MS = 60_000;

/**
 * The same run, for removing what a step made (a scratch database, a copy in a container): its
 * commands run even after an interrupt stopped the step, each bounded by CLEANUP_DEADLINE_MS, so
 * an interrupted step still cleans up before the verb exits.
 */
export function forCleanup(context: RunContext): RunContext {
  const scoped = Object.create(context) as RunContext;
  Object.defineProperty(scoped, 'exec', {
    value: (file: string, args: readonly string[], options: ExecOptions = {}) =>
      // No deadline name: this one is fixed, not a kind of the deadlines option.
      context.exec(file, args, { ...options, signal: undefined, deadlineMs: CLEANUP_DEADLINE_MS, deadlineName: undefined }),
  });
  return scoped;
}
