import { ReleaseError, formatBytes, type BackupRequest, type Plugin, type ReleaseState, type RunContext } from '../../core/index.js';
import { currentBranch, diffFiles, dirtyPaths, git, headSha, isAncestor, resolveSha } from '../git/git.js';
import { gitOptionsSchema, parseOptions, type GitOptions } from '../git/options.js';
import { parseManifest, manifestPath, serviceOfPath } from '../platform/manifest.js';
import { showFile } from '../git/git.js';
import { join } from 'node:path';

export const PLUGIN_NAME = 'prepare';

/** YYYYMMDD_HHMMSS in UTC: the backup folder name recorded in BACKUPS. */
export function backupTimestamp(date = new Date()): string {
  const iso = date.toISOString();
  return `${iso.slice(0, 4)}${iso.slice(5, 7)}${iso.slice(8, 10)}_${iso.slice(11, 13)}${iso.slice(14, 16)}${iso.slice(17, 19)}`;
}

async function refuseUnlessClean(context: RunContext, options: GitOptions): Promise<void> {
  const branch = await currentBranch(context);
  if (branch !== options.branch) {
    throw new ReleaseError('PHASE_FAILED', `the prod clone is on ${branch ? `branch ${branch}` : 'a detached HEAD'}, not ${options.branch}`, {
      hint: `git switch ${options.branch} (the orchestrator releases ${options.branch} only)`,
    });
  }
  const dirty = await dirtyPaths(context);
  if (dirty.length > 0) {
    throw new ReleaseError('PHASE_FAILED', `the work tree has ${dirty.length} uncommitted change(s); nothing was changed`, {
      lines: dirty.slice(0, 20),
      hint: 'a prod clone holds no local edits: commit them through a PR, or git stash them, then run again',
    });
  }
}

/** The state of an earlier attempt at this ticket that this prepare can finish, if any. */
function resumable(previous: ReleaseState | undefined, head: string, headIsAfterBase: boolean): ReleaseState | undefined {
  if (!previous) return undefined;
  if (previous.mergeSha !== '' && previous.mergeSha === head) return previous;
  if (previous.mergeSha === '' && headIsAfterBase) return previous;
  return undefined;
}

/** The services a diff touches: `packages/<svc>/` folders with a manifest at either end. */
async function changedServices(context: RunContext, base: string, merge: string) {
  const files = await diffFiles(context, base, merge);
  const services = new Set<string>();
  const skipped = new Set<string>();
  for (const file of files) {
    for (const path of [file.path, file.from]) {
      const service = path ? serviceOfPath(path) : undefined;
      if (!service || services.has(service)) continue;
      const hasManifest = (await showFile(context, merge, manifestPath(service))) !== undefined
        || (await showFile(context, base, manifestPath(service))) !== undefined;
      (hasManifest ? services : skipped).add(service);
    }
  }
  return { files, services: [...services].sort(), skipped: [...skipped].sort() };
}

/** Backs up one service's `backup:` entries into one timestamped folder, and records it in BACKUPS. */
async function backUpService(context: RunContext, state: ReleaseState, service: string): Promise<void> {
  if (state.backups[service]) {
    context.out.phase(PLUGIN_NAME, `backup of ${service} already taken (${state.backups[service]})`);
    return;
  }
  const text = (await showFile(context, state.mergeSha, manifestPath(service))) ?? (await showFile(context, state.baseSha, manifestPath(service)));
  if (text === undefined) return;
  const manifest = parseManifest(text, manifestPath(service), service);
  if (manifest.backup.length === 0) return;
  const stamp = backupTimestamp();
  const dir = join(context.workspaceDir, 'backups', service, stamp);
  for (const [index, entry] of manifest.backup.entries()) {
    const request: BackupRequest = { service, entry, dir, index };
    const hook = context.hooks.backup.get(entry.type);
    if (!hook?.isUsed()) {
      throw new ReleaseError('BAD_INPUT', `${manifestPath(service)}: backup[${index}].type: no backup plugin handles "${entry.type}"`, {
        hint: `register a backup plugin for "${entry.type}" in release.config.ts, or fix the type`,
      });
    }
    if (context.dryRun) {
      const size = await context.hooks.sizeBackup.get(entry.type)?.promise(request, context);
      context.out.phase(PLUGIN_NAME, `would back up ${service}: ${entry.type}${size === undefined ? '' : ` (about ${formatBytes(size)} before compression)`} into ${dir}`);
      continue;
    }
    context.failpoint(`before-backup-${service}`);
    const result = await hook.promise(request, context);
    if (!result) throw new ReleaseError('BACKUP_FAILED', `backup ${entry.type} of ${service} produced nothing`);
    context.failpoint(`after-backup-${service}`);
  }
  if (context.dryRun) return;
  state.backups[service] = stamp;
  context.saveState();
  context.log.event(PLUGIN_NAME, 'backup', { service, at: stamp });
}

async function backUp(context: RunContext, state: ReleaseState): Promise<void> {
  for (const service of state.services) await backUpService(context, state, service);
}

export function preparePlugin(rawOptions: Partial<GitOptions> = {}): Plugin {
  const options = parseOptions(PLUGIN_NAME, gitOptionsSchema, rawOptions);
  const upstream = `refs/remotes/${options.remote}/${options.branch}`;
  return {
    name: PLUGIN_NAME,
    apply({ hooks }) {
      hooks.phase.for('prepare').tapPromise(PLUGIN_NAME, async (context) => {
        await refuseUnlessClean(context, options);
        const head = await headSha(context);
        let previous: ReleaseState | undefined;
        if (context.stateFile.exists()) previous = context.stateFile.read();
        const earlier = resumable(previous, head, previous ? await isAncestor(context, previous.baseSha, head) : false);

        if (earlier && earlier.mergeSha !== '') {
          context.out.phase(PLUGIN_NAME, `resuming: HEAD is already at MERGE_SHA ${earlier.mergeSha.slice(0, 12)} of this ticket`);
          context.log.event(PLUGIN_NAME, 'resumed', { merge: earlier.mergeSha });
          context.state = earlier;
          await backUp(context, earlier);
          return;
        }

        context.out.phase(PLUGIN_NAME, `git fetch ${options.remote}`);
        await git(context, ['fetch', '--quiet', '--end-of-options', options.remote]);
        context.failpoint('after-fetch');
        const base = earlier ? earlier.baseSha : head;
        const target = await resolveSha(context, upstream);
        if (target === base) {
          throw new ReleaseError('NOTHING_TO_RELEASE', `nothing to release: HEAD (${base.slice(0, 12)}) already equals ${options.remote}/${options.branch}`, {
            hint: 'someone pulled on this host by hand, so BASE_SHA == MERGE_SHA; never pull here, the orchestrator pulls itself. If the code is not live yet, ask who pulled and see docs/operations.md',
          });
        }
        if (!(await isAncestor(context, head, target))) {
          const ahead = await isAncestor(context, target, head);
          throw new ReleaseError('PHASE_FAILED', ahead
            ? `this clone has local commits that ${options.remote}/${options.branch} lacks; nothing was changed`
            : `this clone and ${options.remote}/${options.branch} have diverged: the pull would not be a fast-forward; nothing was changed`, {
            hint: `inspect with: git log --oneline ${options.remote}/${options.branch}...HEAD; a prod clone must only ever fast-forward`,
          });
        }
        const state: ReleaseState = {
          ticket: context.ticket, branch: options.branch, baseSha: base, mergeSha: '',
          services: [], skippedMetadata: [], backups: {},
        };
        context.state = state;
        context.out.phase(PLUGIN_NAME, `BASE_SHA=${base}`);
        if (context.dryRun) {
          state.mergeSha = target;
          context.out.phase(PLUGIN_NAME, `would pull --ff-only ${options.remote} ${options.branch}: MERGE_SHA would be ${target}`);
        } else {
          context.saveState();
          if (head !== target) {
            context.out.phase(PLUGIN_NAME, `git pull --ff-only ${options.remote} ${options.branch}`);
            await git(context, ['pull', '--ff-only', '--quiet', options.remote, options.branch]);
          }
          context.failpoint('after-pull');
          state.mergeSha = await headSha(context);
          context.out.phase(PLUGIN_NAME, `MERGE_SHA=${state.mergeSha}`);
        }
        const changed = await changedServices(context, state.baseSha, state.mergeSha);
        state.services = changed.services;
        state.skippedMetadata = changed.skipped;
        context.out.phase(PLUGIN_NAME, `${changed.files.length} changed file(s); services: ${state.services.join(' ') || 'none'}`);
        for (const file of changed.files) context.out.detail(`${file.status} ${file.from ? `${file.from} -> ` : ''}${file.path}`);
        context.saveState();
        await backUp(context, state);
      });

      // migrate.sh without --no-backup asks for a service's backup through this action.
      hooks.apply.tapPromise(PLUGIN_NAME, async (action, context) => {
        if (action.kind !== 'backup') return undefined;
        await backUpService(context, context.requireState(), action.service);
        return true;
      });

      hooks.resume.tapPromise(PLUGIN_NAME, async (context) => {
        if (context.verb !== 'release-run') return;
        const state = context.requireState();
        const head = await headSha(context);
        if (state.mergeSha === '' || head !== state.mergeSha) {
          throw new ReleaseError('BAD_INPUT', `cannot resume: HEAD is ${head.slice(0, 12)} but the state file's MERGE_SHA is ${state.mergeSha.slice(0, 12) || 'not recorded yet'}`, {
            hint: `run from the start: just release-run ${context.ticket} --from=prepare`,
          });
        }
      });
    },
  };
}

