import { readPlan, requirePlanAfterFetch, requirePlanBeforeFetch } from '../plan/index.js';
import { ReleaseError, type Plugin, type ReleaseState, type RunContext, parseOptions } from '../../api/index.js';
import { diffView } from '../../shared/git/diff-view.js';
import { foreignBuilders } from '../platform/compose-file.js';
import { currentBranch, displayPath, git, gitTry, headSha, isAncestor, requireCleanWorkTree, requireKnownCommits, resolveSha, showFile } from '../../shared/git/git.js';
import { validateServicesAt } from '../platform/validate.js';
import { manifestPath, serviceOfPath } from '../platform/manifest.js';
import { autoPrune, backUpAll, backUpService, requireBackupSpace, servicesToBackUp } from '../backups/take.js';
import { requireRecentRestoreTests } from '../backups/verify.js';
import { prepareOptionsSchema, type PrepareInput, type PrepareOptions } from './options.js';

export const PLUGIN_NAME = 'prepare';

async function refuseUnlessClean(context: RunContext, options: PrepareOptions): Promise<void> {
  const branch = await currentBranch(context);
  if (branch !== options.branch) {
    throw new ReleaseError('PHASE_FAILED', `the prod clone is on ${branch ? `branch ${branch}` : 'a detached HEAD'}, not ${options.branch}`, {
      hint: `git switch ${options.branch} (the orchestrator releases ${options.branch} only)`,
      reason: 'CLONE_REFUSED',
    });
  }
  await requireCleanWorkTree(context, 'PHASE_FAILED', context.out.command('release-run', [context.ticket]));
}

/** The services a diff touches: `packages/<svc>/` folders with a manifest at either end. */
async function changedServices(context: RunContext, base: string, target: string) {
  const diff = await diffView(context, base, target);
  const files = [...diff.files];
  const services = new Set<string>();
  const skipped = new Set<string>();
  for (const file of files) {
    // A service that builds from a folder outside its own (a shared base) is changed by it too.
    for (const builder of foreignBuilders(diff, file.path).keys()) services.add(builder);
    for (const path of [file.path, file.from]) {
      const service = path ? serviceOfPath(path) : undefined;
      if (!service || services.has(service) || skipped.has(service)) continue;
      const hasManifest = (await showFile(context, target, manifestPath(service))) !== undefined
        || (await showFile(context, base, manifestPath(service))) !== undefined;
      (hasManifest ? services : skipped).add(service);
    }
  }
  return { files, services: [...services].sort(), skipped: [...skipped].sort() };
}

/**
 * Where an earlier, interrupted attempt at this ticket left off, so prepare finishes it instead of
 * losing its BASE_SHA: 'pulled' (HEAD is its MERGE_SHA), 'before-pull' (HEAD is still its BASE_SHA,
 * or the pull happened but was not recorded), or none.
 */
async function earlierAttempt(context: RunContext, head: string, target: string): Promise<{ kind: 'pulled' | 'before-pull'; state: ReleaseState } | undefined> {
  if (!context.stateFile.exists()) return undefined;
  const state = context.stateFile.read();
  if (state.mergeSha !== '') return state.mergeSha === head ? { kind: 'pulled', state } : undefined;
  if (state.baseSha === head) return { kind: 'before-pull', state };
  // Pulled but killed before MERGE_SHA was recorded: HEAD is the very commit it logged it would pull.
  const pulling = context.log.events().some((event) => event.event === 'pulling' && event.target === head);
  if (head === target && pulling && (await isAncestor(context, state.baseSha, head))) return { kind: 'before-pull', state };
  return undefined;
}

function alreadyReleased(context: RunContext, head: string): ReleaseError {
  return new ReleaseError('NOTHING_TO_RELEASE', `nothing to release: release ${context.ticket} already went through (HEAD ${head.slice(0, 12)} is its MERGE_SHA); nothing was changed`, {
    hint: `to check it again: just release-run ${context.ticket} --from=verify; to undo it: just release-revert ${context.ticket}`,
    reason: 'ALREADY_RELEASED',
  });
}

/** The restore-test age check and autoPrune when the config asks, then the space check of the backups still to take. */
async function makeRoomForBackups(context: RunContext, state: ReleaseState, sha: string, options: PrepareOptions): Promise<void> {
  requireRecentRestoreTests(context, await servicesToBackUp(context, state, sha), options.restoreTests);
  const credit = options.retention.autoPrune ? await autoPrune(context, options.retention) : undefined;
  await requireBackupSpace(context, state, sha, options.diskSpace, options.retention, context.dryRun ? credit : undefined);
}

/** Text that may hold a remote's URL, as it may be shown: no user, password or token of a URL in it. */
function shownUrl(text: string): string {
  return text.replace(/\b([a-z][a-z0-9+.-]*:\/\/)[^\s/@'"]*@/gi, '$1');
}

/**
 * `git fetch REMOTE`, before anything is written: a remote that cannot be reached stops the
 * release naming it and its URL (exit 1), with nothing changed.
 */
async function fetchRemote(context: RunContext, options: PrepareOptions): Promise<void> {
  const result = await gitTry(context, ['fetch', '--quiet', '--end-of-options', options.remote]);
  if (result.exitCode === 0) return;
  const url = await gitTry(context, ['remote', 'get-url', '--end-of-options', options.remote]);
  const where = url.exitCode === 0 ? ` (${shownUrl(url.stdout.trim())})` : '';
  const why = result.stderr.split('\n').map((line) => line.replace(/^fatal: /, '').trim()).filter(Boolean).map(shownUrl);
  throw new ReleaseError('PHASE_FAILED', `cannot fetch from remote ${options.remote}${where}: ${why[why.length - 1] ?? `git fetch exited ${result.exitCode}`}; nothing was changed`, {
    lines: why.slice(0, -1).slice(-4),
    hint: `check that this host reaches it (git ls-remote ${options.remote}), then run the release again; it has not started`,
    reason: 'ORIGIN_UNREACHABLE',
  });
}

async function prepare(context: RunContext, options: PrepareOptions): Promise<void> {
  const upstream = `refs/remotes/${options.remote}/${options.branch}`;
  await refuseUnlessClean(context, options);
  const head = await headSha(context);
  const plan = context.planFile ? readPlan(context.planFile) : undefined;
  if (plan) requirePlanBeforeFetch(context, plan, head);
  const pulledEarlier = await earlierAttempt(context, head, head);
  if (pulledEarlier?.kind === 'pulled' && context.log.events().some((e) => e.phase === 'verify' && e.event === 'done')) {
    throw alreadyReleased(context, head);
  }

  if (context.local) {
    // A dev host's drill: release the commits this clone holds beyond the upstream it last
    // fetched, without reaching the remote. BASE_SHA is that upstream, MERGE_SHA is HEAD.
    context.out.phase(PLUGIN_NAME, `--local: no fetch and no pull; releasing ${options.remote}/${options.branch} (as last fetched)..HEAD`);
  } else {
    context.out.phase(PLUGIN_NAME, `git fetch ${options.remote}`);
    await fetchRemote(context, options);
    context.failpoint('after-fetch');
  }
  const fetched = await resolveSha(context, upstream);
  if (plan) await requirePlanAfterFetch(context, plan, fetched);
  const target = context.local ? head : fetched;

  if (pulledEarlier?.kind === 'pulled' && target === head) {
    // An earlier attempt pulled and recorded MERGE_SHA, and origin has nothing newer: finish its prepare.
    const state = pulledEarlier.state;
    context.state = state;
    if (context.dryRun) {
      context.out.phase(PLUGIN_NAME, `would resume: HEAD is already this ticket's MERGE_SHA ${state.mergeSha.slice(0, 12)}; BASE_SHA ${state.baseSha.slice(0, 12)} and the backups are kept`);
      return;
    }
    context.out.phase(PLUGIN_NAME, `resuming: HEAD is already at this ticket's MERGE_SHA ${state.mergeSha.slice(0, 12)}`);
    context.log.event(PLUGIN_NAME, 'resumed', { merge: state.mergeSha });
    await makeRoomForBackups(context, state, state.mergeSha, options);
    await backUpAll(context, state, state.mergeSha, options.backupConcurrency);
    return;
  }

  // An earlier attempt of this ticket (stopped before the pull, or stopped after it, e.g. by an
  // unclassified file whose rule was merged since): its BASE_SHA and backups are kept, so the
  // release goes on to the new origin/main and release-revert still goes back to where it began.
  const earlier = (pulledEarlier?.kind === 'pulled' ? pulledEarlier : undefined) ?? (context.dryRun ? undefined : await earlierAttempt(context, head, target));
  if (!earlier && !context.dryRun && context.stateFile.exists()) {
    const stale = context.stateFile.read();
    if (stale.mergeSha !== '') {
      // A release of this ticket that pulled, and that the clone has moved past: its state is what
      // release-revert needs, so it is never overwritten.
      throw new ReleaseError('BAD_INPUT', `ticket ${context.ticket} was already released (${stale.baseSha.slice(0, 12)}..${stale.mergeSha.slice(0, 12)}) and HEAD has moved past it; nothing was changed`, {
        hint: `release the new commits under a new ticket id; ${context.stateFile.path} is kept for release-revert`,
      });
    }
    // An attempt that never reached the services (e.g. its backup failed) and that other releases
    // have since passed: its BASE_SHA and backups belong to a clone that is gone. Start afresh.
    context.out.warn(`an earlier attempt of ${context.ticket} from BASE_SHA ${stale.baseSha.slice(0, 12)} never pulled and HEAD has moved since: starting afresh from HEAD`);
    context.log.event(PLUGIN_NAME, 'attempt-replaced', { old_base: stale.baseSha });
  }
  const base = earlier ? earlier.state.baseSha : context.local ? fetched : head;
  if (target === base) {
    if (context.local) {
      throw new ReleaseError('NOTHING_TO_RELEASE', `nothing to release: HEAD (${head.slice(0, 12)}) equals ${options.remote}/${options.branch} as last fetched; nothing was changed`, {
        hint: `--local releases commits made or merged in this clone: merge the feature branch into ${options.branch} here first`,
        reason: 'NOTHING_LOCAL',
      });
    }
    throw new ReleaseError('NOTHING_TO_RELEASE', `nothing to release: HEAD (${base.slice(0, 12)}) already equals ${options.remote}/${options.branch}; nothing was changed`, {
      hint: 'someone pulled on this host by hand, so BASE_SHA would equal MERGE_SHA; never pull here, the orchestrator pulls itself. See docs/operations.md',
    });
  }
  if (context.local) {
    if (!(await isAncestor(context, fetched, head))) {
      throw new ReleaseError('PHASE_FAILED', `this clone and ${options.remote}/${options.branch} (as last fetched) have diverged: --local releases only commits on top of it; nothing was changed`, {
        hint: `inspect with: git log --oneline ${options.remote}/${options.branch}...HEAD`,
      });
    }
  } else if (!(await isAncestor(context, head, target))) {
    const ahead = await isAncestor(context, target, head);
    throw new ReleaseError('PHASE_FAILED', ahead
      ? `this clone has local commits that ${options.remote}/${options.branch} lacks; nothing was changed`
      : `this clone and ${options.remote}/${options.branch} have diverged: the pull would not be a fast-forward; nothing was changed`, {
      hint: ahead
        ? `a prod clone must only ever fast-forward: inspect with git log --oneline ${options.remote}/${options.branch}..HEAD. On a dev host, to release these local commits without a pull: just release-run ${context.ticket} --local`
        : `inspect with: git log --oneline ${options.remote}/${options.branch}...HEAD; a prod clone must only ever fast-forward`,
      reason: 'CLONE_REFUSED',
    });
  }
  // From here on the release is governed by the config it releases (a plugin and its first use ship in one merge).
  await context.useConfigAt(target);
  const changed = await changedServices(context, base, target);
  // Every file this release will read is checked at the fetched commit, before anything changes.
  await validateServicesAt(context, target, [...changed.services, ...changed.skipped], changed.services);
  const previous = earlier?.state;
  const state: ReleaseState = {
    ticket: context.ticket, branch: options.branch, baseSha: base, mergeSha: '',
    services: [...new Set([...(previous?.services ?? []), ...changed.services])].sort(),
    skippedMetadata: [...new Set([...(previous?.skippedMetadata ?? []), ...changed.skipped])].sort(),
    backups: previous ? { ...previous.backups } : {},
  };
  context.state = state;
  if (previous && previous.mergeSha !== '') {
    context.out.phase(PLUGIN_NAME, `continuing release ${context.ticket}: ${options.remote}/${options.branch} moved from its MERGE_SHA ${previous.mergeSha.slice(0, 12)} to ${target.slice(0, 12)}; BASE_SHA and the backups are kept`);
    if (!context.dryRun) context.log.event(PLUGIN_NAME, 'continued', { previous_merge: previous.mergeSha, target });
  }
  context.out.phase(PLUGIN_NAME, `BASE_SHA=${base}`);
  context.out.phase(PLUGIN_NAME, `${changed.files.length} changed file(s) up to ${context.local ? 'HEAD' : `${options.remote}/${options.branch}`} ${target.slice(0, 12)}; services: ${state.services.join(' ') || 'none'}`);
  context.out.details(changed.files.map((file) => `${file.status} ${file.from ? `${displayPath(file.from)} -> ` : ''}${displayPath(file.path)}`),
    (count) => `... and ${count} more (all of them: git diff --name-status ${base.slice(0, 12)} ${target.slice(0, 12)})`);
  // Before the state file: a release the disk cannot hold stops with nothing written but its log.
  await makeRoomForBackups(context, state, target, options);
  context.saveState();

  // Backups come before the pull: a backup that fails leaves the clone and every service as they were.
  await backUpAll(context, state, target, options.backupConcurrency);

  if (context.dryRun) {
    state.mergeSha = target;
    context.out.phase(PLUGIN_NAME, context.local
      ? `MERGE_SHA would be HEAD ${target} (no pull with --local)`
      : `would pull --ff-only ${options.remote} ${options.branch}: MERGE_SHA would be ${target}`);
    return;
  }
  if (head !== target) {
    // Logged first: a run killed after the pull but before MERGE_SHA is saved is recognised by it.
    context.log.event(PLUGIN_NAME, 'pulling', { target });
    // Fast-forward to exactly what was fetched and backed up for, even if origin moved since.
    context.out.phase(PLUGIN_NAME, `git pull --ff-only ${options.remote} ${options.branch} (as fetched: ${target.slice(0, 12)})`);
    await git(context, ['merge', '--ff-only', '--quiet', '--end-of-options', target]);
  }
  context.failpoint('after-pull');
  state.mergeSha = await headSha(context);
  context.out.phase(PLUGIN_NAME, `MERGE_SHA=${state.mergeSha}`);
  context.saveState();
}

export function preparePlugin(rawOptions: PrepareInput = {}): Plugin {
  const options = parseOptions(PLUGIN_NAME, prepareOptionsSchema, rawOptions);
  return {
    name: PLUGIN_NAME,
    apply({ hooks }) {
      hooks.phase.for('prepare').tapPromise(PLUGIN_NAME, (context) => prepare(context, options));

      // migrate.sh without --no-backup asks for a service's backup through this action.
      hooks.act.for('backup').tapPromise(PLUGIN_NAME, async (action, context) => {
        const state = context.requireState();
        await backUpService(context, state, state.mergeSha || 'HEAD', action.service);
        return true;
      });

      hooks.resume.tapPromise(PLUGIN_NAME, async (context) => {
        const state = context.requireState();
        await requireKnownCommits(context, state);
        if (context.verb !== 'release-run') return;
        const head = await headSha(context);
        if (state.mergeSha === '' || head !== state.mergeSha) {
          throw new ReleaseError('BAD_INPUT', `cannot resume: HEAD is ${head.slice(0, 12)} but the state file's MERGE_SHA is ${state.mergeSha.slice(0, 12) || 'not recorded yet'}`, {
            hint: `run from the start (it keeps this release's BASE_SHA and backups): just release-run ${context.ticket} --from=prepare`,
          });
        }
      });
    },
  };
}
