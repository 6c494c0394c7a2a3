import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { ReleaseError, toReleaseError, writeFileAtomic, type RestoreRequest, type RunContext, type ReleaseState, type SpaceNeed } from '../../api/index.js';
import type { DiskSpaceOptions, RetentionOptions } from './options.js';
import { requireSpace } from './space.js';
import { showFile } from '../../shared/git/git.js';
import { manifestPath, parseManifest } from '../platform/manifest.js';
import { backupDir, backupRequests, discardInterruptedBackups, DISK_FULL_TEXT, ENTRIES_FILE, estimateBackups, stampTime, takeBackup } from './take.js';
import { withDeadline } from '../deadlines/index.js';

/** Beside each entry's files once it is restored: `.restored.<index>`. */
const RESTORED_MARKER = '.restored';

/** The restored marks in a backup folder (file names). */
export const restoredMarkers = (dir: string): string[] =>
  existsSync(dir) ? readdirSync(dir).filter((name) => name.startsWith(`${RESTORED_MARKER}.`)) : [];

/**
 * The backup entries of a release: as recorded beside each backup when it was taken, else (a
 * backup from before they were recorded) from the release's manifest (HEAD's without a state).
 */
export async function restoreRequests(context: RunContext, state: Pick<ReleaseState, 'mergeSha' | 'baseSha'> | undefined, backups: Record<string, string>): Promise<RestoreRequest[]> {
  const requests: RestoreRequest[] = [];
  for (const [service, stamp] of Object.entries(backups)) {
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
    const text = (await showFile(context, state?.mergeSha || 'HEAD', manifestPath(service))) ?? (state ? await showFile(context, state.baseSha, manifestPath(service)) : undefined);
    if (text === undefined) throw new ReleaseError('BACKUP_FAILED', `no manifest for ${service} at MERGE_SHA or BASE_SHA: cannot tell how its backup was taken`);
    const manifest = parseManifest(text, manifestPath(service), service);
    requests.push(...backupRequests(service, manifest.backup, dir));
  }
  return requests;
}

export interface RestoreOptions {
  space: DiskSpaceOptions;
  retention: RetentionOptions;
  /**
   * Back up the data each restore replaces before any is restored (PRE_REVERT_BACKUPS in the
   * state), so `release-revert TICKET --undo` can put it back.
   */
  backUpFirst: boolean;
  /** Why not, when backUpFirst is false, for the line that says so. */
  offBecause?: string;
}

/** `14 min`, `3 h 05 min`, `2 days`: how old a backup is, at a glance. */
function age(ms: number): string {
  const minutes = Math.floor(Math.max(0, ms) / 60_000);
  if (minutes < 1) return `${Math.round(Math.max(0, ms) / 1000)} s`;
  if (minutes < 60) return `${minutes} min`;
  if (minutes < 48 * 60) return `${Math.floor(minutes / 60)} h ${String(minutes % 60).padStart(2, '0')} min`;
  return `${Math.floor(minutes / 1440)} days`;
}

/**
 * Per service, before anything is restored: the backup that goes back, how old it is, and what was
 * written since where its strategy can tell. Returns the entries whose data is not there now.
 */
async function reportReplaced(context: RunContext, requests: RestoreRequest[], backups: Record<string, string>, bounded: RunContext): Promise<Set<RestoreRequest>> {
  const absent = new Set<RestoreRequest>();
  for (const service of new Set(requests.map((request) => request.service))) {
    const since = stampTime(backups[service]!);
    context.out.phase('restore', `${service}: puts back its backup of ${since.toISOString().replace('T', ' ').slice(0, 19)} UTC (${age(Date.now() - since.getTime())} old), replacing its data as it is now`);
    for (const request of requests.filter((candidate) => candidate.service === service)) {
      let writes: string | undefined;
      try {
        const answer = await context.hooks.writesSince.get(request.entry.type)?.promise({ ...request, since }, bounded);
        writes = answer?.words;
        if (answer?.absent) absent.add(request);
      } catch (error) {
        writes = `could not tell (${(error as Error).message.split('\n')[0]})`;
      }
      const line = `${service}: backup[${request.index}] ${request.entry.type}: ${writes ?? 'its strategy cannot tell what was written since'}`;
      context.out.detail(line);
      context.out.events.emit('restore', 'replaces', { service, type: request.entry.type, backup: backups[service]!, writes_since: writes ?? null });
    }
  }
  return absent;
}

/**
 * Takes the pre-revert backups: the data as it is now of every service about to be restored, with
 * the same strategies and checks as prepare's backups, recorded in PRE_REVERT_BACKUPS before any
 * restore starts. A service already backed up by an earlier, interrupted run keeps that backup.
 */
async function backUpBeforeRestore(context: RunContext, state: ReleaseState, requests: RestoreRequest[], absent: Set<RestoreRequest>): Promise<void> {
  state.preRevertBackups ??= {};
  for (const service of new Set(requests.map((request) => request.service))) {
    if (state.preRevertBackups[service]) {
      context.out.phase('restore', `${service}: its pre-revert backup was taken already (${state.preRevertBackups[service]})`);
      continue;
    }
    const entries = requests.filter((request) => request.service === service && !absent.has(request)).map((request) => request.entry);
    if (entries.length === 0) {
      context.out.phase('restore', `${service}: none of its data is there now, so there is nothing to back up before the restore`);
      continue;
    }
    if (context.dryRun) {
      context.out.phase('restore', `would back up the data of ${service} as it is now first (pre-revert backup, for --undo)`);
      continue;
    }
    discardInterruptedBackups(context, service);
    let taken: { stamp: string; bytes: number };
    try {
      taken = await takeBackup(context, service, entries, 'restore');
    } catch (thrown) {
      const error = toReleaseError(thrown);
      if (error.reason === 'HOOK_FAILED') throw error;
      throw new ReleaseError(error.code === 'PHASE_FAILED' ? 'BACKUP_FAILED' : error.code, `the pre-revert backup of ${service} failed, so its data as it is now would be lost: ${error.message}; nothing was restored`, {
        lines: error.lines, plugin: error.plugin, hook: error.hook, service, cause: error,
        hint: `fix the cause (${error.hint ?? 'see above'}) and run ${context.out.command('release-revert', [context.ticket])} again; or revert without keeping the data as it is now: ${context.out.command('release-revert', [context.ticket, '--without-pre-revert-backup'])}`,
      });
    }
    const { stamp, bytes } = taken;
    state.preRevertBackups[service] = stamp;
    context.saveState();
    context.log.event('restore', 'backup', { service, at: stamp, bytes, pre_revert: 'yes' });
    context.out.phase('restore', `${service}: its data as it is now is in the pre-revert backup ${backupDir(context, service, stamp)}`);
    await context.hooks.lifecycle.promise({ event: 'post-backup', service }, context);
  }
}

/**
 * Restores every backup in `backups` (service -> stamp; the release's BACKUPS, or for --undo its
 * PRE_REVERT_BACKUPS): all are checked first (a bad one restores nothing), what each replaces is
 * shown and, unless turned off, backed up; then the services with data to put back are stopped,
 * and each entry is restored and marked, so a run after an interruption skips what is done. The
 * services stay stopped: revert's redeploy starts them.
 */
export async function restoreAll(context: RunContext, state: ReleaseState, backups: Record<string, string>, options: RestoreOptions): Promise<void> {
  const { space, retention } = options;
  let requests = await restoreRequests(context, state, backups);
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
  const absent = await reportReplaced(context, pending, backups, bounded);
  // The pre-revert backup covers every entry of a service with an entry still to restore.
  const pendingServices = new Set(pending.map((request) => request.service));
  const toBackUp = options.backUpFirst ? requests.filter((request) => pendingServices.has(request.service) && !absent.has(request) && !state.preRevertBackups?.[request.service]) : [];
  // Room for the pre-revert backups and the staging copies, before any service is stopped.
  const needs: SpaceNeed[] = await estimateBackups(context, toBackUp.map((request) => ({ ...request, dir: backupDir(context, request.service, 'pending') })));
  for (const request of pending) {
    const need = await context.hooks.restoreSpace.get(request.entry.type)?.promise(request, bounded);
    if (need) needs.push(need);
  }
  await requireSpace(context, needs, space, retention, {
    purpose: toBackUp.length > 0 ? 'the pre-revert backups and the restores of this release' : 'the restores of this release',
    unchanged: context.dryRun ? 'this is a dry run' : 'no service was stopped and nothing was restored',
    phase: 'restore',
    rerun: `just release-revert ${context.ticket}`,
  });
  if (options.backUpFirst) await backUpBeforeRestore(context, state, requests.filter((request) => pendingServices.has(request.service)), absent);
  else if (pending.length > 0) context.out.phase('restore', `no pre-revert backup (${options.offBecause}): the data the restore replaces is not kept`);
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
    try {
      await context.hooks.restore.get(request.entry.type)!.promise(request, bounded);
    } catch (thrown) {
      // A strategy that met a full disk (its own files, or the database server's) says so in words: the reason names it.
      const error = toReleaseError(thrown);
      if (error.reason === 'DISK_FULL' || !DISK_FULL_TEXT.test([error.message, ...error.lines].join('\n'))) throw error;
      throw new ReleaseError(error.code, error.message, { hint: error.hint, lines: error.lines, plugin: error.plugin, hook: error.hook, service: error.service, cause: error, reason: 'DISK_FULL' });
    }
    context.failpoint('mid-restore');
    writeFileAtomic(marker, `${new Date().toISOString()}\n`);
    context.log.event('restore', 'restored', { service: request.service, type: request.entry.type });
  }
}

