import { existsSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { ReleaseError, writeFileAtomic, type RestoreRequest, type RunContext, type ReleaseState, type SpaceNeed } from '../../api/index.js';
import type { DiskSpaceOptions, RetentionOptions } from './options.js';
import { requireSpace } from './space.js';
import { showFile } from '../git/git.js';
import { manifestPath, parseManifest } from '../platform/manifest.js';
import { backupDir, backupRequests, ENTRIES_FILE } from './take.js';
import { withDeadline } from '../deadlines/index.js';

/** Beside each entry's files once it is restored: `.restored.<index>`. */
const RESTORED_MARKER = '.restored';

/**
 * The backup entries of a release: as recorded beside each backup when it was taken, else (a
 * backup from before they were recorded) from the release's manifest.
 */
async function restoreRequests(context: RunContext, state: ReleaseState): Promise<RestoreRequest[]> {
  const requests: RestoreRequest[] = [];
  for (const [service, stamp] of Object.entries(state.backups)) {
    const dir = backupDir(context, service, stamp);
    const recorded = join(dir, ENTRIES_FILE);
    if (existsSync(recorded)) {
      let entries: RestoreRequest['entry'][];
      try {
        entries = JSON.parse(readFileSync(recorded, 'utf8')) as RestoreRequest['entry'][];
        if (!Array.isArray(entries) || !entries.every((entry) => typeof entry?.type === 'string')) throw new Error('not a list of entries');
      } catch (error) {
        throw new ReleaseError('BACKUP_FAILED', `${recorded} is damaged (${(error as Error).message}); nothing was restored`, {
          hint: `restore ${service} by hand from ${dir}, or put the file back as prepare wrote it`,
        });
      }
      requests.push(...backupRequests(service, entries, dir));
      continue;
    }
    const text = (await showFile(context, state.mergeSha || 'HEAD', manifestPath(service))) ?? (await showFile(context, state.baseSha, manifestPath(service)));
    if (text === undefined) throw new ReleaseError('BACKUP_FAILED', `no manifest for ${service} at MERGE_SHA or BASE_SHA: cannot tell how its backup was taken`);
    const manifest = parseManifest(text, manifestPath(service), service);
    requests.push(...backupRequests(service, manifest.backup, dir));
  }
  return requests;
}

/**
 * Restores every backup of the release: all are checked first (a bad one restores nothing), the
 * services with data to put back are stopped, then each entry is restored and marked, so a run
 * after an interruption skips what is done. The services stay stopped: revert's redeploy starts them.
 */
export async function restoreAll(context: RunContext, state: ReleaseState, space: DiskSpaceOptions, retention: RetentionOptions): Promise<void> {
  let requests = await restoreRequests(context, state);
  if (requests.length === 0) {
    context.out.phase('restore', 'no backups recorded: nothing to restore');
    return;
  }
  // A revert that finished restored everything; a prune may have removed the backups since.
  const events = context.log.events();
  const finishedRevert = events.some((e) => e.phase === 'revert-verify' && e.event === 'done');
  const prunedAway = (request: RestoreRequest) => events.find((e) => e.event === 'pruned' && e.service === request.service && e.at === basename(request.dir));
  const gone = requests.filter((request) => finishedRevert && !existsSync(request.dir) && prunedAway(request));
  for (const request of gone) context.out.phase('restore', `${request.entry.type} of ${request.service} was restored by the revert that finished; its backup was pruned since`);
  requests = requests.filter((request) => !gone.includes(request));
  // Every command a check or a restore runs is bounded by the restore deadline, unless it names its own.
  const bounded = withDeadline(context, 'restore');
  // Check every backup before restoring any, so a bad one never leaves data half restored.
  for (const request of requests) {
    const check = context.hooks.checkBackup.get(request.entry.type);
    const restore = context.hooks.restore.get(request.entry.type);
    if (!check?.isUsed() || !restore?.isUsed()) {
      throw new ReleaseError('BAD_INPUT', `no backup plugin restores type "${request.entry.type}" (service ${request.service})`, {
        hint: 'register it in release.config.ts',
      });
    }
    if (!existsSync(request.dir)) {
      const pruned = prunedAway(request);
      throw new ReleaseError('BACKUP_FAILED', `backup folder ${request.dir} is missing${pruned ? ` (release prune removed it: by=${pruned.by})` : ''}; nothing was restored`, {
        hint: pruned ? 'restore that data by hand from another copy, or revert the code alone after checking the data yourself' : undefined,
      });
    }
    await check.promise(request, bounded);
    context.out.phase('restore', `backup ${request.entry.type} of ${request.service} checked`);
  }
  const pending = requests.filter((request) => !existsSync(join(request.dir, `${RESTORED_MARKER}.${request.index}`)));
  // Room for the staging copies, before any service is stopped.
  const needs: SpaceNeed[] = [];
  for (const request of pending) {
    const need = await context.hooks.restoreSpace.get(request.entry.type)?.promise(request, bounded);
    if (need) needs.push(need);
  }
  await requireSpace(context, needs, space, retention, {
    purpose: 'the restores of this release',
    unchanged: context.dryRun ? 'this is a dry run' : 'no service was stopped and nothing was restored',
    phase: 'restore',
    rerun: `just release-revert ${context.ticket}`,
  });
  if (!context.dryRun) {
    // The released code must not write while its data is put back; redeploy starts the old code.
    for (const service of new Set(pending.map((request) => request.service))) {
      await context.hooks.act.get('stop')?.promise({ service, kind: 'stop', reason: 'its data is being restored' }, context);
    }
  }
  for (const request of requests) {
    const marker = join(request.dir, `${RESTORED_MARKER}.${request.index}`);
    if (existsSync(marker)) {
      context.out.phase('restore', `${request.entry.type} of ${request.service} already restored`);
      continue;
    }
    if (context.dryRun) {
      context.out.phase('restore', `would restore ${request.entry.type} of ${request.service} from ${request.dir}`);
      continue;
    }
    await context.hooks.restore.get(request.entry.type)!.promise(request, bounded);
    context.failpoint('mid-restore');
    writeFileAtomic(marker, `${new Date().toISOString()}\n`);
    context.log.event('restore', 'restored', { service: request.service, type: request.entry.type });
  }
}

