import { ReleaseError, type Action, type Plugin, type RunContext, parseOptions, z } from '../../api/index.js';
import { carryOut } from '../../core/index.js';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { restoreAll, restoredMarkers } from '../backups/restore.js';
import { backupDir } from '../backups/take.js';
import { git, gitTry, headSha, isAncestor, parents, requireCleanWorkTree } from '../../shared/git/git.js';
import { gitOptionsSchema, type GitOptions } from '../../shared/git/options.js';
import { diskSpaceSchema, retentionSchema } from '../backups/options.js';
import { afterInWorkTree, dependencyWaves } from '../platform/waves.js';
import { laterWork, revertedTree, type LaterWork } from './later-releases.js';
import { requireHealthy, requireNoDrift } from '../verify/checks.js';

const revertOptionsSchema = gitOptionsSchema.extend({
  /** The room restores' staging copies must find before any service is stopped. */
  diskSpace: diskSpaceSchema.prefault({}),
  /** For the `release prune` a refusal suggests. */
  retention: retentionSchema.prefault({}),
  /**
   * Back up the data every restore replaces before the first restore (the pre-revert backups),
   * so `release-revert TICKET --undo` can put it back. Off only for hosts without the room.
   */
  preRevertBackup: z.boolean().default(true),
});

export const PLUGIN_NAME = 'revert';

/** Git identity for the revert commit when the prod clone has none configured. */
async function identityArgs(context: RunContext): Promise<string[]> {
  const email = await gitTry(context, ['config', 'user.email']);
  return email.exitCode === 0 ? [] : ['-c', 'user.name=release-orchestrator', '-c', 'user.email=release-orchestrator@localhost'];
}

/**
 * Where the clone stands relative to the release, decided before anything is restored:
 * `to-revert-older` is a release that later commits sit on, none of which touched what it released.
 */
type GitPosition = 'never-pulled' | 'to-revert' | 'to-revert-older' | 'reverted' | 'to-undo' | 'undone';

const undoMessage = (ticket: string, preRevertHead: string) =>
  `Undo the revert of release ${ticket}\n\nThis puts back the tree of ${preRevertHead.slice(0, 12)}, as it was before release-revert ${ticket}.`;

const revertMessage = (ticket: string, state: { baseSha: string; mergeSha: string }, merge: boolean) =>
  `Revert release ${ticket}\n\nThis reverts ${state.baseSha.slice(0, 12)}..${state.mergeSha.slice(0, 12)}${merge ? ' (the merge, -m 1)' : ''}.`;

/** The refusal when later releases (or commits) changed what this release released. */
function laterWorkRefusal(context: RunContext, work: LaterWork): ReleaseError {
  const { ticket, out } = context;
  const state = context.requireState();
  const list = (items: string[]) => (items.length > 4 ? `${items.slice(0, 4).join(', ')} and ${items.length - 4} more` : items.join(', ')) || 'none';
  const lines = work.later.map((release) =>
    `${release.ticket} (MERGE_SHA ${release.mergeSha.slice(0, 12)}${release.ended ? `, ended ${release.ended}` : ''}): services ${list(release.services)}; files ${list(release.files)}`);
  const byReleases = new Set(work.later.flatMap((release) => release.files));
  const byHand = work.changedSince.filter((path) => !byReleases.has(path));
  if (byHand.length > 0) lines.push(`changed since MERGE_SHA ${state.mergeSha.slice(0, 12)} by commits no release of this clone made: ${list(byHand)}`);
  const what = work.later.length > 0
    ? `${work.later.length} later release(s) touched what it released`
    : `commits after it changed ${work.changedSince.length} of its file(s)`;
  const inOrder = [...work.later.map((release) => out.command('release-revert', [release.ticket])), out.command('release-revert', [ticket])].join(' && ');
  return new ReleaseError('BAD_INPUT', `release ${ticket} cannot be reverted as it is: ${what}; nothing was changed`, {
    reason: 'LATER_RELEASES',
    lines,
    hint: `${work.later.length > 0 ? `revert the later releases first, newest first: ${inOrder}; or ` : ''}revert ${ticket}'s code only, keeping the data as it is now: ${out.command('release-revert', [ticket, '--code-only'])}`,
  });
}

/**
 * Checks, before any data is touched, that the release can be reverted in git: HEAD is its
 * MERGE_SHA (or already our revert of it) and the tree is clean. Anything else is exit 8 with
 * nothing changed, backups included.
 */
async function gitPosition(context: RunContext): Promise<GitPosition> {
  const state = context.requireState();
  // A revert -m 1 killed half way leaves REVERT_HEAD and a dirty index: undo that first.
  if (!context.dryRun && (await gitTry(context, ['rev-parse', '-q', '--verify', 'REVERT_HEAD'])).exitCode === 0) {
    await git(context, ['revert', '--abort']);
    context.log.event('git-revert', 'aborted-leftover');
  }
  const head = await headSha(context);
  if (state.mergeSha === '') {
    // Prepare stopped before recording MERGE_SHA: the pull happened only if HEAD moved on from BASE_SHA.
    if (head === state.baseSha || !(await isAncestor(context, state.baseSha, head))) return 'never-pulled';
    context.out.phase('restore', `MERGE_SHA was never recorded (prepare was interrupted after the pull); taking HEAD ${head.slice(0, 12)}`);
    context.log.event('git-revert', 'merge-inferred', { merge: head });
    state.mergeSha = head;
    context.saveState();
  }
  if (head !== state.mergeSha) {
    const headParents = await parents(context, head);
    const [headTree, baseTree] = await Promise.all([head, state.baseSha].map((sha) => git(context, ['rev-parse', `${sha}^{tree}`])));
    if (headParents[0] === state.mergeSha && headTree === baseTree) return 'reverted';
    if ((await git(context, ['log', '-1', '--format=%B', head])).startsWith(revertMessage(context.ticket, state, false).replace(/\.$/, ''))) return 'reverted';
    if (!(await isAncestor(context, state.mergeSha, head))) {
      throw new ReleaseError('REVERT_BLOCKED', `HEAD (${head.slice(0, 12)}) is not a descendant of MERGE_SHA (${state.mergeSha.slice(0, 12)}); nothing was changed`, {
        hint: `the clone's history no longer holds this release as it was pulled: inspect with git log --oneline ${state.mergeSha.slice(0, 12)}...HEAD, and revert by hand with a PR`,
      });
    }
    const work = await laterWork(context, state, head);
    if (!context.codeOnly && (work.later.length > 0 || work.changedSince.length > 0)) throw laterWorkRefusal(context, work);
  }
  await requireCleanWorkTree(context, 'REVERT_BLOCKED', context.out.command('release-revert', [context.ticket]));
  if (head === state.mergeSha) return 'to-revert';
  // Checked before any data is restored: the commits after this release must let its change go.
  const reverted = await revertedTree(context, state, head);
  if ('conflicts' in reverted) {
    throw new ReleaseError('REVERT_BLOCKED', `the changes of release ${context.ticket} no longer revert cleanly on HEAD (${head.slice(0, 12)}); nothing was changed`, {
      lines: reverted.conflicts.slice(0, 20), hint: 'later commits changed these files too: revert the later releases first (newest first), or revert by hand with a PR',
    });
  }
  return 'to-revert-older';
}

/**
 * For `--undo`: HEAD must be the revert's own commit on top of PRE_REVERT_HEAD (or already hold
 * PRE_REVERT_HEAD's tree, when an earlier undo got that far), and the tree clean.
 */
async function undoPosition(context: RunContext): Promise<GitPosition> {
  const state = context.requireState();
  const { preRevertHead } = state;
  const { ticket } = context;
  if (!preRevertHead) {
    throw new ReleaseError('BAD_INPUT', `release ${ticket} has no revert to undo (its state file records none: it was never reverted, or the undo finished already); nothing was changed`, {
      hint: `see what happened to it with: ${context.out.command('release', ['show', ticket])}`,
    });
  }
  await requireCleanWorkTree(context, 'REVERT_BLOCKED', context.out.command('release-revert', [ticket, '--undo']));
  const head = await headSha(context);
  const [headTree, undoneTree] = await Promise.all([head, preRevertHead].map((sha) => git(context, ['rev-parse', `${sha}^{tree}`])));
  if (headTree === undoneTree) return 'undone';
  // The revert made exactly one commit on top of PRE_REVERT_HEAD; anything more came after it.
  const headParents = await parents(context, head);
  if (headParents.length !== 1 || headParents[0] !== preRevertHead) {
    throw new ReleaseError('REVERT_BLOCKED', `HEAD (${head.slice(0, 12)}) is no longer the revert of release ${ticket} on top of ${preRevertHead.slice(0, 12)}; nothing was changed`, {
      hint: `commits came after the revert: inspect with git log --oneline ${preRevertHead.slice(0, 12)}..HEAD, and release the change again as a new ticket`,
    });
  }
  return 'to-undo';
}

/** The undo's git step: one commit on top of HEAD whose tree is PRE_REVERT_HEAD's, as the revert itself committed. */
async function undoInGit(context: RunContext, options: GitOptions): Promise<void> {
  const state = context.requireState();
  const preRevertHead = state.preRevertHead!;
  if (positionOf(context) === 'undone') {
    context.out.phase('git-revert', `HEAD already holds the tree of ${preRevertHead.slice(0, 12)}`);
    return;
  }
  if (context.dryRun) {
    context.out.phase('git-revert', `would commit the tree of ${preRevertHead.slice(0, 12)} (as before the revert) on top of HEAD`);
    return;
  }
  const tree = await git(context, ['rev-parse', `${preRevertHead}^{tree}`]);
  const undo = await git(context, [...await identityArgs(context), 'commit-tree', tree, '-p', await headSha(context), '-m', undoMessage(context.ticket, preRevertHead)]);
  await git(context, ['merge', '--ff-only', '--quiet', '--end-of-options', undo]);
  context.log.event('git-revert', 'undone', { sha: undo });
  context.out.phase('git-revert', `commit ${undo} puts back the tree of ${preRevertHead.slice(0, 12)}`);
  context.out.phase('git-revert', `this commit exists only in this clone; publish it with: git push ${options.remote} ${options.branch}`);
}

/**
 * Once an undo verified: the state no longer records a revert, and the release's own backups lose
 * their restored marks, so a later release-revert restores them again.
 */
function forgetRevert(context: RunContext): void {
  const state = context.requireState();
  for (const [service, stamp] of Object.entries(state.backups)) {
    for (const marker of restoredMarkers(backupDir(context, service, stamp))) rmSync(join(backupDir(context, service, stamp), marker));
  }
  delete state.preRevertHead;
  delete state.preRevertBackups;
  context.saveState();
  context.log.event('revert-verify', 'revert-undone');
}

/** Where git stood when this revert started, per run: a module-level map, private to this plugin. */
const positions = new WeakMap<RunContext, GitPosition>();
const positionOf = (context: RunContext) => positions.get(context)!;

async function revertInGit(context: RunContext, options: GitOptions): Promise<void> {
  const state = context.requireState();
  const position = positionOf(context);
  if (position === 'never-pulled') {
    context.out.phase('git-revert', 'the release never pulled: nothing to revert in git');
    return;
  }
  if (position === 'reverted') {
    context.out.phase('git-revert', `already reverted by ${(await headSha(context)).slice(0, 12)}`);
    return;
  }
  const baseTree = await git(context, ['rev-parse', `${state.baseSha}^{tree}`]);
  const mergeParents = await parents(context, state.mergeSha);
  const isMerge = mergeParents.length === 2 && mergeParents[0] === state.baseSha;
  const identity = await identityArgs(context);
  const message = revertMessage(context.ticket, state, isMerge);
  if (position === 'to-revert-older') {
    const head = await headSha(context);
    const later = await git(context, ['rev-list', '--count', `${state.mergeSha}..${head}`]);
    if (context.dryRun) {
      context.out.phase('git-revert', `would commit one revert of ${state.baseSha.slice(0, 12)}..${state.mergeSha.slice(0, 12)} on top of HEAD ${head.slice(0, 12)}, keeping the ${later} later commit(s)`);
      return;
    }
    const reverted = await revertedTree(context, state, head);
    if ('conflicts' in reverted) throw new ReleaseError('REVERT_BLOCKED', `the changes of release ${context.ticket} no longer revert cleanly on HEAD (${head.slice(0, 12)})`, { lines: reverted.conflicts });
    const revert = await git(context, [...identity, 'commit-tree', reverted.tree, '-p', head, '-m', message]);
    context.failpoint('mid-git-revert');
    await git(context, ['merge', '--ff-only', '--quiet', '--end-of-options', revert]);
    context.log.event('git-revert', 'reverted', { sha: revert });
    context.out.phase('git-revert', `revert commit ${revert} (takes out ${state.baseSha.slice(0, 12)}..${state.mergeSha.slice(0, 12)}; the ${later} later commit(s) stay)`);
    context.out.phase('git-revert', `this commit exists only in this clone; publish it with: git push ${options.remote} ${options.branch}`);
    return;
  }
  if (context.dryRun) {
    context.out.phase('git-revert', isMerge
      ? `would run git revert -m 1 ${state.mergeSha}`
      : `would commit one revert of ${state.baseSha.slice(0, 12)}..${state.mergeSha.slice(0, 12)}`);
    return;
  }
  if (isMerge) {
    // Applied first, committed second: a crash in between leaves REVERT_HEAD, which the next run aborts.
    const result = await gitTry(context, [...identity, 'revert', '--no-commit', '-m', '1', '--end-of-options', state.mergeSha]);
    if (result.exitCode !== 0) {
      await gitTry(context, ['revert', '--abort']);
      throw new ReleaseError('REVERT_BLOCKED', `git revert -m 1 ${state.mergeSha.slice(0, 12)} failed; the tree was left clean`, {
        lines: result.output.split('\n').slice(-5), hint: 'resolve it by hand with a PR that reverts the release',
      });
    }
    context.failpoint('mid-git-revert');
    await git(context, [...identity, 'commit', '--quiet', '--no-edit']);
  } else {
    // A fast-forwarded range becomes one commit whose tree is BASE_SHA's, whatever the range holds.
    const revert = await git(context, [...identity, 'commit-tree', baseTree, '-p', state.mergeSha, '-m', message]);
    context.failpoint('mid-git-revert');
    await git(context, ['merge', '--ff-only', '--quiet', '--end-of-options', revert]);
  }
  const reverted = await headSha(context);
  context.log.event('git-revert', 'reverted', { sha: reverted });
  context.out.phase('git-revert', `revert commit ${reverted} (tree == BASE_SHA ${state.baseSha.slice(0, 12)})`);
  context.out.phase('git-revert', `this commit exists only in this clone; publish it with: git push ${options.remote} ${options.branch}`);
}

/**
 * The released services in the order migrate would apply them at the reverted tree: a service after
 * those its `after:` names. A tree whose `after:` cannot be ordered keeps the recorded order.
 */
function revertOrder(context: RunContext, services: readonly string[]): string[] {
  try {
    return dependencyWaves(services, afterInWorkTree(context.repoDir)).flat();
  } catch {
    return [...services];
  }
}

/**
 * The pre-revert hooks, before the revert touches anything: the repo's, then each released
 * service's, read from the tree as released. A rerun after an interruption runs them again.
 */
async function preRevertHooks(context: RunContext): Promise<void> {
  await context.hooks.lifecycle.promise({ event: 'pre-revert' }, context);
  for (const service of context.requireState().services) await context.hooks.lifecycle.promise({ event: 'pre-revert', service }, context);
}

/** Each service's actions to match the reverted tree, then its post-revert hook (of that tree); the repo's last. */
async function redeploy(context: RunContext): Promise<void> {
  for (const service of revertOrder(context, context.requireState().services)) {
    const actions: Action[] = [];
    await context.hooks.plan.promise(service, context, actions);
    if (actions.length === 0) context.out.phase('redeploy', `${service}: 0 actions`);
    for (const action of actions) {
      context.out.phase('redeploy', `${context.dryRun ? 'would ' : ''}${action.kind} ${service}: ${action.reason}`);
      context.out.events.emit('redeploy', 'action', { ...action });
      if (context.dryRun) continue;
      await carryOut(context, action);
    }
    await context.hooks.lifecycle.promise({ event: 'post-revert', service }, context);
  }
  await context.hooks.lifecycle.promise({ event: 'post-revert' }, context);
}

export function revertPlugin(rawOptions: z.input<typeof revertOptionsSchema> = {}): Plugin {
  const options = parseOptions(PLUGIN_NAME, revertOptionsSchema, rawOptions);
  return {
    name: PLUGIN_NAME,
    apply({ hooks }) {
      hooks.resume.tapPromise(PLUGIN_NAME, async (context) => {
        if (context.verb !== 'release-revert') return;
        const position = context.undo ? await undoPosition(context) : await gitPosition(context);
        positions.set(context, position);
        const state = context.requireState();
        // Where an undo goes back to; kept from the first attempt when a revert is run again.
        if (!context.undo && (position === 'to-revert' || position === 'to-revert-older') && !state.preRevertHead && !context.dryRun) {
          state.preRevertHead = await headSha(context);
          context.saveState();
        }
        // The release's own config restores its backups, even once git is back at BASE_SHA.
        const { mergeSha } = context.requireState();
        if (mergeSha) await context.useConfigAt(mergeSha);
      });
      hooks.phase.for('restore').tapPromise(PLUGIN_NAME, async (context) => {
        if (positionOf(context) !== 'never-pulled') await preRevertHooks(context);
        if (context.codeOnly) {
          context.out.phase('restore', `--code-only: no data is restored; the backups of ${context.ticket} are kept`);
          return;
        }
        if (positionOf(context) === 'never-pulled') {
          // Nothing of the release reached the services: restoring would only throw away newer data.
          context.out.phase('restore', 'the release never pulled, so no service changed: nothing to restore (its backups are kept)');
          return;
        }
        const state = context.requireState();
        if (context.undo) {
          if (!state.preRevertBackups || Object.keys(state.preRevertBackups).length === 0) {
            context.out.phase('restore', 'the revert took no pre-revert backup (it restored no data, or preRevertBackup was off): no data to put back');
            return;
          }
          await restoreAll(context, state, state.preRevertBackups, { space: options.diskSpace, retention: options.retention, backUpFirst: false });
          return;
        }
        await restoreAll(context, state, state.backups, {
          space: options.diskSpace, retention: options.retention, backUpFirst: options.preRevertBackup && !context.withoutPreRevertBackup,
          offBecause: context.withoutPreRevertBackup ? '--without-pre-revert-backup' : 'revert option preRevertBackup: false',
        });
      });
      hooks.phase.for('git-revert').tapPromise(PLUGIN_NAME, (context) => (context.undo ? undoInGit(context, options) : revertInGit(context, options)));
      hooks.phase.for('redeploy').tapPromise(PLUGIN_NAME, redeploy);
      hooks.phase.for('revert-verify').tapPromise(PLUGIN_NAME, async (context) => {
        const services = context.requireState().services;
        if (context.dryRun) {
          context.out.phase('revert-verify', `would check 0 actions and health for: ${services.join(' ') || 'no service'}`);
          return;
        }
        await requireNoDrift(context, services);
        await requireHealthy(context, services);
        if (context.undo) forgetRevert(context);
        else if (Object.keys(context.requireState().preRevertBackups ?? {}).length > 0) {
          context.out.phase('revert-verify', `the data this revert replaced is kept in its pre-revert backups; to put it and the released code back: ${context.out.command('release-revert', [context.ticket, '--undo'])}`);
        }
      });
    },
  };
}
