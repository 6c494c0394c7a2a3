import { createHooks, type Hooks } from './hooks.js';
import { createContext, workspacePaths, type ContextInit, type RunContext } from './context.js';
import { EXIT_CODES, ReleaseError, toReleaseError } from './errors.js';
import { INHERITED_LOCK_ENV, ReleaseLock } from './lock.js';
import { exec } from './exec.js';
import { recordHookMapEntries } from './tapped.js';
import { requirePhasePlugins } from './phase-check.js';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { removeStaleTempFiles } from './fs-private.js';
import type { Output } from './output.js';
import { PHASES_OF, phasesFrom, type Verb } from './phases.js';
import type { ReleaseConfig } from './plugin.js';
import type { OutcomeFields } from './events.js';
import type { ReleaseState } from './state.js';
import { commandLine, pasteable } from './commands.js';

/** Tags every error a tap throws with the plugin (tap name) and the hook it came from. */
function tagErrors(hook: { intercept(interceptor: object): void }, hookName: string): void {
  hook.intercept({
    register(tap: { name: string; type: string; fn: (...args: unknown[]) => unknown }) {
      const original = tap.fn;
      const tag = (error: unknown) => {
        const tagged = toReleaseError(error);
        tagged.plugin ??= tap.name;
        tagged.hook ??= hookName;
        return tagged;
      };
      tap.fn = tap.type === 'promise'
        ? (...args: unknown[]) => Promise.resolve(original(...args)).catch((error) => { throw tag(error); })
        : (...args: unknown[]) => {
          try { return original(...args); } catch (error) { throw tag(error); }
        };
      return tap;
    },
  });
}

/** Builds the hooks and lets every configured plugin tap them. */
export function applyPlugins(config: ReleaseConfig): Hooks {
  const hooks = createHooks();
  for (const [name, hook] of Object.entries(hooks)) {
    if ('for' in hook) {
      const record = recordHookMapEntries(hook);
      hook.intercept({
        factory: (key, created) => {
          tagErrors(created as never, `${name}.for(${String(key)})`);
          record(key, created);
          return created as never;
        },
      });
    } else {
      tagErrors(hook as never, name);
    }
  }
  for (const plugin of config.plugins) {
    try {
      plugin.apply({ hooks });
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      throw new ReleaseError('BAD_INPUT', `plugin ${plugin.name} failed to apply: ${message}`, {
        hint: 'fix its options in release.config.ts',
      });
    }
  }
  return hooks;
}

/** A run of a verb: what its context is made from (context.ts), for a verb with phases. */
export interface RunVerbOptions extends Omit<ContextInit, 'verb' | 'auditLog'> {
  verb: Verb;
  /**
   * How a release-run reverts itself: the release-revert bin, as argv, run at once under this
   * run's lock. With `always` (`--atomic`) after any failure past the pull; else only after a
   * failed watch window. The run then ends reverted, or names the revert's failure.
   */
  atomic?: { revertCommand: readonly string[]; always: boolean };
}

function interruptedIfAborted(context: RunContext, error: ReleaseError): ReleaseError {
  if (!context.signal.aborted) return error;
  return new ReleaseError('INTERRUPTED', 'interrupted by a signal', { cause: error });
}

/**
 * Runs a verb's phases in order under the release lock, halting on the first failure.
 * Returns the exit code; every failure has been printed and logged by then.
 */
export async function runVerb(options: RunVerbOptions): Promise<number> {
  const { verb, out } = options;
  const started = new Date();
  out.events.ticket = options.ticket;
  out.events.dryRun = options.dryRun;
  const phases = phasesFrom(verb, options.from);
  requirePhasePlugins(options.hooks, verb);
  const context = createContext({ ...options, from: options.from });
  const paths = workspacePaths(options.repoDir, options.ticket);
  const lock = new ReleaseLock(paths.lockFile);
  try {
    if (options.dryRun) {
      out.info(`dry run: nothing in the repo, the workspace or the services will change`);
    } else {
      const previous = lock.acquire(options.ticket);
      const repaired = context.log.repair();
      if (repaired) {
        out.warn(`the audit log's last line was cut off (a crash); it was moved to ${repaired} and the log repaired`);
        context.log.event('orchestrator', 'log-repaired', { moved_to: repaired });
      }
      if (previous) {
        out.warn(`took over a stale lock of ${ReleaseLock.describe(previous)}`);
        context.log.event('orchestrator', 'lock-takeover', { stale_pid: previous.pid, stale_ticket: previous.ticket });
      }
      for (const dir of [paths.releasesDir, paths.workspaceDir, join(paths.workspaceDir, 'runtime'), join(paths.workspaceDir, 'release')]) removeStaleTempFiles(dir);
    }
    context.log.event('orchestrator', 'start', { verb, from: options.from, local: options.local ? 'yes' : undefined, code_only: options.codeOnly ? 'yes' : undefined, undo: options.undo ? 'yes' : undefined });
    const resuming = verb === 'release-revert' || phases[0] !== PHASES_OF[verb][0];
    if (resuming) {
      const state = context.requireState();
      if (state.ticket !== options.ticket) {
        throw new ReleaseError('BAD_INPUT', `state file ${context.stateFile.path} is for ticket ${state.ticket}, not ${options.ticket}`, { reason: 'STATE_FILE' });
      }
      await context.hooks.resume.promise(context);
    }
    for (const [index, phase] of phases.entries()) {
      context.phase = phase.name;
      if (context.signal.aborted) throw new ReleaseError('INTERRUPTED', 'interrupted by a signal');
      out.phase(phase.name, options.dryRun ? `preview: ${phase.summary}` : phase.summary);
      out.events.emit(phase.name, 'phase-start', { summary: phase.summary });
      await context.hooks.phase.for(phase.name).promise(context);
      context.log.event(phase.name, 'done', { rc: 0 });
      const next = phases[index + 1];
      if (context.handoffReason && next && !options.dryRun && !process.env[INHERITED_LOCK_ENV]) {
        return await handOff(context, options, next.name, context.handoffReason);
      }
    }
    context.phase = 'orchestrator';
    context.log.event('orchestrator', 'done', { rc: 0 });
    const outcome = verb === 'release-run' ? 'complete' : options.undo ? 'undone' : 'reverted';
    const result = options.dryRun ? 'dry-run' : outcome;
    context.outcome = outcomeFields(context, started, result, 0, { next: [] });
    await context.hooks.done.promise(context);
    out.plain(options.dryRun
      ? `[${verb}] dry run of release ${options.ticket} finished: nothing was changed`
      : options.undo ? `[${verb}] the revert of release ${options.ticket} is undone` : `[${verb}] release ${options.ticket} ${outcome}`);
    out.events.emit('orchestrator', 'outcome', context.outcome);
    return 0;
  } catch (thrown) {
    const error = interruptedIfAborted(context, toReleaseError(thrown));
    const current = context.phase;
    // A refused lock is not our release: its log belongs to the holder's run.
    if (error.code !== 'LOCKED') {
      const event = error.code === 'INTERRUPTED' ? 'interrupted' : 'failed';
      try {
        if (current !== 'orchestrator') context.log.event(current, event, { rc: error.exitCode, plugin: error.plugin });
        context.log.event('orchestrator', event, { rc: error.exitCode, phase_failed: current, reason: error.reason });
      } catch (logError) {
        out.warn(`the audit log could not record the failure: ${String(logError)}`);
      }
    }
    // Only a failure of a phase after prepare comes after the pull: prepare pulls last, so its own
    // refusals (and a leftover state file of an earlier, finished release) have nothing to revert.
    const revertsItself = options.atomic && (options.atomic.always || error.reason === 'WATCH_FAILED');
    const afterThePull = current !== 'orchestrator' && current !== PHASES_OF[verb][0]!.name && releasePulled(context);
    if (revertsItself && verb === 'release-run' && !options.dryRun && afterThePull && error.code !== 'LOCKED') {
      return await revertAtOnce(context, options, lock, started, current, error);
    }
    const next = reportFailure(out, context, options, current, error);
    out.events.emit(current, 'error', errorFields(error));
    out.events.emit('orchestrator', 'next', { ...next });
    const result = error.code === 'LOCKED' || (current === 'orchestrator' && error.code === 'BAD_INPUT') ? 'refused'
      : error.code === 'INTERRUPTED' ? 'interrupted' : options.dryRun ? 'dry-run-failed' : 'failed';
    context.outcome = outcomeFields(context, started, result, error.exitCode, {
      phase_failed: current === 'orchestrator' ? null : current, message: error.message, code: error.code, reason: error.reason, next: next.commands,
    });
    try {
      await context.hooks.failed.promise(context, error);
    } catch (hookError) {
      out.warn(`a failure handler failed too: ${toReleaseError(hookError).message}`);
    }
    out.events.emit('orchestrator', 'outcome', context.outcome);
    return error.exitCode;
  } finally {
    lock.release();
  }
}

/**
 * `--atomic`: the release failed after the pull, so its revert runs now, as `release-revert TICKET`
 * would, in a child that inherits the lock (no other run can come between). A signal to us does
 * not reach it (it has its own process group, and we ignore signals after the first), so an
 * interrupted atomic release still ends reverted, or with the revert's own failure named.
 * Exit: the release's own code when reverted; ATOMIC_REVERT_FAILED (9) when the revert failed.
 */
async function revertAtOnce(context: RunContext, options: RunVerbOptions, lock: ReleaseLock, started: Date, phase: string, error: ReleaseError): Promise<number> {
  const { out, ticket } = options;
  out.reportError(error);
  const why = options.atomic!.always ? '--atomic' : 'the watch window failed';
  out.advice(`release-run failed in phase ${phase}; ${why}: reverting release ${ticket} now (restore, git revert, redeploy, revert-verify)`);
  context.log.event('orchestrator', 'atomic-revert', { phase_failed: phase, reason: error.reason });
  const [file, ...args] = options.atomic!.revertCommand;
  const json = out.events.enabled ? ['--json'] : [];
  const logBefore = logSize(context);
  const revert = await exec(file!, [...args, ticket, '--repo', options.repoDir, ...json], { env: { [INHERITED_LOCK_ENV]: String(process.pid) }, inheritOutput: true });
  // The child released the lock it inherited: take it back for the failure hooks and the log.
  try {
    lock.release();
    lock.acquire(ticket);
  } catch (lockError) {
    out.warn(`after the revert, the release lock could not be taken back: ${toReleaseError(lockError).message}`);
  }
  const reverted = revert.exitCode === 0;
  const failedStep = reverted ? undefined : lastRevertFailure(context, logBefore);
  const commands = reverted ? [] : [commandLine('release-revert', [ticket])];
  if (reverted) {
    context.log.event('orchestrator', 'atomic-reverted', { phase_failed: phase, rc: error.exitCode });
    out.plain(`[release-run] release ${ticket} failed in phase ${phase}, reverted: the data, the code and the services are as they were before it`);
  } else {
    context.log.event('orchestrator', 'atomic-revert-failed', { phase_failed: phase, revert_phase_failed: failedStep ?? 'unknown', rc: EXIT_CODES.ATOMIC_REVERT_FAILED });
    out.plain(`[release-run] release ${ticket} failed in phase ${phase}, and the revert failed in ${failedStep ?? 'an unknown step'} (exit ${revert.exitCode}): the host is not back where it was`);
    out.advice('Fix the cause the revert names above, then finish the revert by hand (finished steps are not repeated):');
    out.advice(`  ${out.command('release-revert', [ticket])}`);
  }
  const exitCode = reverted ? error.exitCode : EXIT_CODES.ATOMIC_REVERT_FAILED;
  const reason = reverted ? error.reason : 'ATOMIC_REVERT_FAILED';
  out.events.emit(phase, 'error', errorFields(error));
  out.events.emit('orchestrator', 'next', { commands, advice: [] });
  context.outcome = outcomeFields(context, started, reverted ? 'reverted' : 'failed', exitCode, {
    phase_failed: phase, message: error.message, code: reverted ? error.code : 'ATOMIC_REVERT_FAILED', reason, next: commands,
    atomic: reverted ? 'reverted' : 'revert-failed', revert_phase_failed: failedStep ?? null,
  });
  try {
    await context.hooks.failed.promise(context, error);
  } catch (hookError) {
    out.warn(`a failure handler failed too: ${toReleaseError(hookError).message}`);
  }
  out.events.emit('orchestrator', 'outcome', context.outcome);
  return exitCode;
}

function logSize(context: RunContext): number {
  try {
    return statSync(context.log.path).size;
  } catch {
    return 0;
  }
}

/** The phase the revert child failed in, from what it added to the audit log we share (after `offset`). */
function lastRevertFailure(context: RunContext, offset: number): string | undefined {
  let text = '';
  try {
    text = readFileSync(context.log.path).subarray(offset).toString('utf8');
  } catch {
    return undefined;
  }
  const failed = text.split('\n').reverse().find((line) => / phase=orchestrator event=(failed|interrupted) .*phase_failed=/.test(line));
  return failed ? /phase_failed=(\S+)/.exec(failed)?.[1] : undefined;
}

/**
 * Runs the remaining phases in a new process of ourselves, which loads the repo's config as the
 * pull left it; it inherits the lock and reuses the state file. Its exit code is ours.
 */
async function handOff(context: RunContext, options: RunVerbOptions, from: string, reason: string): Promise<number> {
  context.log.event('orchestrator', 'handoff', { from, reason });
  options.out.info(`${reason}: re-running the remaining phases in a new process with the pulled config (--from=${from})`);
  const json = options.out.events.enabled ? ['--json'] : [];
  // The operator's --atomic/--no-atomic and --watch hold for the rest of the release too.
  const atomic = options.atomic ? [options.atomic.always ? '--atomic' : '--no-atomic'] : [];
  const watch = options.watchMs ? [`--watch=${Math.ceil(options.watchMs / 1000)}s`] : [];
  const result = await exec(process.execPath, [process.argv[1]!, options.ticket, `--from=${from}`, '--repo', options.repoDir, ...json, ...atomic, ...watch], {
    env: { [INHERITED_LOCK_ENV]: String(process.pid) },
    inheritOutput: true,
    signal: options.signal,
  });
  return result.exitCode;
}

/** Whether this release's clone has moved: prepare recorded its MERGE_SHA (after the pull). */
function releasePulled(context: RunContext): boolean {
  try {
    const state = context.state ?? (context.stateFile.exists() ? context.stateFile.read() : undefined);
    return state !== undefined && state.mergeSha !== '';
  } catch {
    return false; // a damaged state file was reported already; it records no release to undo
  }
}

/**
 * The failure block under the error: only advice that is true. Nothing to roll back when nothing
 * changed (a dry run, bad input, the lock, nothing to release, or before the pull); every
 * command in the form this operator pastes.
 */
function reportFailure(realOut: Output, context: RunContext, options: RunVerbOptions, phase: string, error: ReleaseError): NextSteps {
  const { verb, ticket } = options;
  const next: NextSteps = { commands: [], advice: [] };
  // The same lines and commands the operator reads, recorded for the `next` event.
  const out = {
    advice(line: string) { realOut.advice(line); next.advice.push(pasteable(line)); },
    command(name: string, args: readonly string[] = []) { const line = realOut.command(name, args); next.commands.push(line); return line; },
  };
  realOut.reportError(error);
  // Before the first phase (lock, state file) nothing ran: there is nothing to roll back or resume.
  if (phase === 'orchestrator') return next;
  const code = error.exitCode;
  if (options.dryRun) {
    out.advice(`This was a dry run: nothing was changed. A real run would stop here, in phase ${phase}, with exit ${code}.`);
    out.advice(`Fix the cause above, then preview again:`);
    out.advice(`  ${out.command(verb, [ticket, ...(options.from ? [`--from=${options.from}`] : []), '--dry-run'])}`);
    return next;
  }
  if (verb === 'release-run') {
    const pulled = releasePulled(context);
    if (!pulled || error.code === 'LOCKED' || error.code === 'NOTHING_TO_RELEASE') {
      out.advice(`release-run stopped in phase ${phase}; nothing was changed: the clone and the services are as they were.`);
      if (error.code !== 'BAD_INPUT' && error.code !== 'NOTHING_TO_RELEASE') {
        out.advice(`Once the cause is fixed, run it again:`);
        out.advice(`  ${out.command('release-run', [ticket])}`);
      }
      return next;
    }
    if (error.code === 'BAD_INPUT') {
      // Bad input or config after the pull: fix it and go on; a roll back is not what it calls for.
      out.advice(`release-run stopped in phase ${phase} on bad input or config; the clone is at the release's MERGE_SHA. Once the cause is fixed, resume:`);
      out.advice(`  ${out.command('release-run', [ticket, `--from=${error.resumeFrom ?? phase}`])}`);
      return next;
    }
    out.advice(`release-run failed in phase ${phase}. To roll back:`);
    out.advice(`  ${out.command('release-revert', [ticket])}`);
    out.advice(`To resume once the cause is fixed:`);
    out.advice(`  ${out.command('release-run', [ticket, `--from=${error.resumeFrom ?? phase}`])}`);
  } else {
    // Revert checks everything (state, HEAD, backups) in its first phase before it changes anything.
    const nothingChanged = error.code === 'LOCKED' || ((error.code === 'BAD_INPUT' || error.code === 'REVERT_BLOCKED') && phase === PHASES_OF[verb][0]!.name);
    out.advice(nothingChanged
      ? `release-revert stopped in phase ${phase}; nothing was changed.`
      : `release-revert failed in phase ${phase}. Nothing after it ran.`);
    out.advice(`Once the cause is fixed, run it again; finished steps are not repeated:`);
    out.advice(`  ${out.command('release-revert', [ticket])}`);
  }
  return next;
}

interface NextSteps {
  /** Each command the failure block offers, as the operator pastes it, in the order shown. */
  commands: string[];
  advice: string[];
}

/** The error as the `error` event carries it. */
export function errorFields(error: ReleaseError): Record<string, unknown> {
  return {
    code: error.code, reason: error.reason, exit_code: error.exitCode, message: error.message, hint: error.hint,
    lines: error.lines.length > 0 ? error.lines : undefined, plugin: error.plugin, hook: error.hook, service: error.service,
  };
}

/** The fields of the run's last event (`outcome`): what a CI job or a notifier reads. */
function outcomeFields(context: RunContext, started: Date, result: OutcomeFields['result'], exitCode: number, extra: Partial<OutcomeFields> & Record<string, unknown>): OutcomeFields {
  let state: ReleaseState | undefined;
  try {
    state = context.state ?? (context.stateFile.exists() ? context.stateFile.read() : undefined);
  } catch {
    state = undefined; // a damaged state file was reported already
  }
  return {
    result,
    exit_code: exitCode,
    started: started.toISOString(),
    duration_s: Math.round((Date.now() - started.getTime()) / 100) / 10,
    services: state?.services ?? [],
    base_sha: state?.baseSha ?? '',
    merge_sha: state?.mergeSha ?? '',
    backups: state?.backups ?? {},
    phase_failed: null,
    message: null,
    ...extra,
  } as OutcomeFields;
}
