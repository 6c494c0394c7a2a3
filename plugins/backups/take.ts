import { existsSync, mkdirSync, readdirSync, rmdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import pMap from 'p-map';
import { ReleaseError, ensurePrivateDir, formatBytes, PRIVATE_DIR_MODE, toReleaseError, writeFileAtomic, type BackupRequest, type ReleaseState, type RunContext, type SpaceNeed } from '../../api/index.js';
import { showFile } from '../../shared/git/git.js';
import { manifestPath, parseManifest } from '../platform/manifest.js';
import type { DiskSpaceOptions, RetentionOptions } from './options.js';
import { carryOutPrune, loadReleases, planPrune } from './retention.js';
import { filesystemOf, requireSpace } from './space.js';
import { withDeadline } from '../deadlines/index.js';

export const PHASE = 'prepare';

/** Beside a backup's files: the manifest's `backup:` entries it was taken for. */
export const ENTRIES_FILE = '.entries.json';

/** The folder of one backup of a service: `.asd/workspace/backups/<svc>/<YYYYMMDD_HHMMSS>/`. */
export const backupDir = (context: RunContext, service: string, stamp: string) => join(context.workspaceDir, 'backups', service, stamp);

/** Every entry's type has a strategy in the config in force, or the release stops (exit 2). */
export function requireBackupPlugins(context: RunContext, service: string, entries: BackupRequest['entry'][]): void {
  entries.forEach((entry, index) => {
    if (!context.hooks.backup.get(entry.type)?.isUsed()) {
      throw new ReleaseError('BAD_INPUT', `${manifestPath(service)}: backup[${index}].type: no backup plugin handles "${entry.type}"`, {
        hint: `register a backup plugin for "${entry.type}" in release.config.ts, or fix the type`,
      });
    }
  });
}

/** One request per `backup:` entry, as backup and restore both build them. */
export const backupRequests = (service: string, entries: BackupRequest['entry'][], dir: string): BackupRequest[] =>
  entries.map((entry, index) => ({ service, entry, dir, index, manifest: manifestPath(service) }));

/** YYYYMMDD_HHMMSS in UTC: the backup folder name recorded in BACKUPS. */
export function backupTimestamp(date = new Date()): string {
  const iso = date.toISOString();
  return `${iso.slice(0, 4)}${iso.slice(5, 7)}${iso.slice(8, 10)}_${iso.slice(11, 13)}${iso.slice(14, 16)}${iso.slice(17, 19)}`;
}

/** The time a backup folder's name (YYYYMMDD_HHMMSS[-N], UTC) stands for. */
export function stampTime(stamp: string): Date {
  const [, y, mo, d, h, mi, se] = /^(\d{4})(\d\d)(\d\d)_(\d\d)(\d\d)(\d\d)/.exec(stamp) ?? [];
  return new Date(`${y}-${mo}-${d}T${h}:${mi}:${se}Z`);
}

/**
 * Takes a new backup folder of `service` for this moment, created exclusively: a second backup in
 * the same second gets `<stamp>-2` (and so on), never another backup's folder.
 */
function claimBackupDir(context: RunContext, service: string): { stamp: string; dir: string } {
  const base = backupTimestamp();
  ensurePrivateDir(dirname(backupDir(context, service, base)));
  for (let n = 1; ; n++) {
    const stamp = n === 1 ? base : `${base}-${n}`;
    const dir = backupDir(context, service, stamp);
    try {
      mkdirSync(dir, { mode: PRIVATE_DIR_MODE });
      return { stamp, dir };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
  }
}

/** The `backup:` entries of a service's manifest at `sha` (or at BASE_SHA when the release deletes it). */
async function backupEntries(context: RunContext, state: ReleaseState, sha: string, service: string) {
  const text = (await showFile(context, sha, manifestPath(service))) ?? (await showFile(context, state.baseSha, manifestPath(service)));
  return text === undefined ? [] : parseManifest(text, manifestPath(service), service).backup;
}

/**
 * Folders of backups of `service` that this release started but never recorded (the run was
 * killed in between): they may be partial, so they are removed before a new backup is taken.
 */
export function discardInterruptedBackups(context: RunContext, service: string): void {
  const events = context.log.events();
  const finished = new Set(events.filter((e) => e.event === 'backup' && e.service === service).map((e) => e.at));
  for (const started of events.filter((e) => e.event === 'backup-start' && e.service === service && !finished.has(e.at))) {
    const dir = backupDir(context, service, started.at!);
    if (!existsSync(dir)) continue;
    rmSync(dir, { recursive: true, force: true });
    context.log.event(PHASE, 'backup-discarded', { service, at: started.at, why: 'interrupted' });
  }
}

/** The `backup:` entries of a service this release still has to back up; why not, when none. */
async function pendingEntries(context: RunContext, state: ReleaseState, sha: string, service: string): Promise<{ entries: BackupRequest['entry'][] } | { skip?: string }> {
  if (state.backups[service]) return { skip: `backup of ${service} already taken (${state.backups[service]})` };
  // A service this release adds has no data yet: its volumes and databases appear on its first deploy.
  if ((await showFile(context, state.baseSha, manifestPath(service))) === undefined) return { skip: `${service} is new in this release: nothing to back up` };
  const entries = await backupEntries(context, state, sha, service);
  if (entries.length === 0) return {};
  requireBackupPlugins(context, service, entries);
  return { entries };
}

/** The services of the release with `backup:` entries still to back up. */
export async function servicesToBackUp(context: RunContext, state: ReleaseState, sha: string): Promise<string[]> {
  const services: string[] = [];
  for (const service of state.services) if ('entries' in await pendingEntries(context, state, sha, service)) services.push(service);
  return services;
}

/** Size estimates of this run (hooks.sizeBackup), so the backups reuse what the space check measured. */
const estimates = new WeakMap<RunContext, Map<string, number>>();
const estimateKey = (request: BackupRequest) => `${request.service}#${request.index}`;

/**
 * Before the first backup byte is written: the backups still to take, by their strategies'
 * estimates, fit on the backups' filesystem with the margin (exit 6 otherwise, nothing changed).
 * An estimate that fails is reported and left out: the backup itself then says what is wrong.
 */
export async function requireBackupSpace(context: RunContext, state: ReleaseState, sha: string, space: DiskSpaceOptions, retention: RetentionOptions, credit?: Map<number, number>): Promise<void> {
  const requests: BackupRequest[] = [];
  for (const service of state.services) {
    const pending = await pendingEntries(context, state, sha, service);
    if ('entries' in pending) requests.push(...backupRequests(service, pending.entries, backupDir(context, service, 'pending')));
  }
  const needs = await estimateBackups(context, requests);
  if (needs.length === 0) return;
  await requireSpace(context, needs, space, retention, {
    purpose: 'the backups of this release',
    unchanged: context.dryRun ? 'this is a dry run' : 'nothing was changed',
    phase: PHASE,
    rerun: `just release-run ${context.ticket}`,
    folder: join(context.workspaceDir, 'backups'),
    credit,
  });
}

/**
 * The room backups about to be taken need, by their strategies' estimates (kept for the backups'
 * progress). An estimate that fails is reported and left out: the backup itself then says what is wrong.
 */
export async function estimateBackups(context: RunContext, requests: BackupRequest[]): Promise<SpaceNeed[]> {
  const needs: SpaceNeed[] = [];
  const measured = estimates.get(context) ?? new Map<string, number>();
  estimates.set(context, measured);
  for (const request of requests) {
    const what = `${request.service}: backup[${request.index}] ${request.entry.type}`;
    try {
      const bytes = await context.hooks.sizeBackup.get(request.entry.type)?.promise(request, withDeadline(context, 'backup'));
      if (bytes === undefined) continue;
      measured.set(estimateKey(request), bytes);
      needs.push({ path: request.dir, bytes, what });
    } catch (error) {
      // A manifest the strategy refuses is bad input, the same before an estimate as before a backup.
      if (toReleaseError(error).code === 'BAD_INPUT') throw error;
      context.out.warn(`${what}: its size could not be estimated (${toReleaseError(error).message}); its space is not checked`);
    }
  }
  return needs;
}

/**
 * `autoPrune`: before the space check, remove the backups of old releases as `release prune`
 * would (logged in each pruned release's log and in this one's). Returns what it frees per
 * filesystem, which a dry run (that removes nothing) credits to the space check.
 */
export async function autoPrune(context: RunContext, retention: RetentionOptions): Promise<Map<number, number>> {
  const plan = planPrune(context, await loadReleases(context), retention.keep);
  const freed = new Map<number, number>();
  for (const candidate of plan.remove) freed.set(candidate.dev, (freed.get(candidate.dev) ?? 0) + candidate.bytes);
  if (plan.remove.length === 0) return freed;
  const result = carryOutPrune(context, { ...plan, kept: [], unclaimed: [] }, (line) => context.out.phase(PHASE, `autoPrune: ${line}`), context.ticket);
  context.log.event(PHASE, 'auto-prune', { removed: result.removed.length, freed: result.freedBytes, keep: retention.keep });
  return freed;
}

/** How the tools and the kernel say a disk is full. */
export const DISK_FULL_TEXT = /no space left on device|disk quota exceeded|ENOSPC|EDQUOT/i;

/** A backup that filled the disk: say how full it is now that the partial files are gone, and how to make room. */
function diskFullAdvice(context: RunContext, thrown: unknown, rerun: string): unknown {
  const error = toReleaseError(thrown);
  if (!DISK_FULL_TEXT.test([error.message, ...error.lines].join('\n'))) return thrown;
  const backups = join(context.workspaceDir, 'backups');
  const fs = filesystemOf(backups);
  return new ReleaseError(error.code === 'PHASE_FAILED' ? 'BACKUP_FAILED' : error.code, error.message, {
    lines: [...error.lines, `the partial files were removed; the filesystem of ${backups} now has ${formatBytes(fs.free)} free of ${formatBytes(fs.total)} (df -h ${backups})`],
    hint: `make room (just release prune --dry-run shows what old releases' backups can go; or grow the disk), then ${rerun}`,
    plugin: error.plugin, hook: error.hook, service: error.service, cause: error, reason: 'DISK_FULL',
  });
}

/** Backs up one service's `backup:` entries (takeBackup) and records the folder in BACKUPS. */
export async function backUpService(context: RunContext, state: ReleaseState, sha: string, service: string): Promise<void> {
  const pending = await pendingEntries(context, state, sha, service);
  if (!('entries' in pending)) {
    if (pending.skip) context.out.phase(PHASE, pending.skip);
    return;
  }
  const entries = pending.entries;
  if (context.dryRun) {
    const dir = backupDir(context, service, backupTimestamp());
    const requests = backupRequests(service, entries, dir);
    await context.hooks.lifecycle.promise({ event: 'pre-backup', service }, context);
    for (const request of requests) {
      const size = estimates.get(context)?.get(estimateKey(request)) ?? await context.hooks.sizeBackup.get(request.entry.type)?.promise(request, withDeadline(context, 'backup'));
      context.out.phase(PHASE, `would back up ${service}: ${request.entry.type}${size === undefined ? '' : ` (about ${formatBytes(size)} before compression)`} into ${dir}`);
      context.out.events.emit(PHASE, 'backup-estimate', { service, type: request.entry.type, bytes: size ?? null, dir });
    }
    await context.hooks.lifecycle.promise({ event: 'post-backup', service }, context);
    return;
  }
  discardInterruptedBackups(context, service);
  const { stamp, bytes } = await takeBackup(context, service, entries, PHASE);
  state.backups[service] = stamp;
  context.saveState();
  context.log.event(PHASE, 'backup', { service, at: stamp, bytes });
  // After the backup is recorded: a failing post-backup hook fails the phase, and the backup stays.
  await context.hooks.lifecycle.promise({ event: 'post-backup', service }, context);
}

/**
 * Backs up `entries` of `service` into a new folder of its own and returns its name. The folder
 * exists (0700) before any strategy writes into it, with the entries it is taken for: a restore
 * reads them back, whatever the manifest says by then. A failure removes that folder whole, so no
 * partial backup is ever left to be mistaken for a good one. The caller records the stamp and
 * logs `event=backup` (which makes the folder the ticket's for retention).
 */
export async function takeBackup(context: RunContext, service: string, entries: BackupRequest['entry'][], phase: string): Promise<{ stamp: string; bytes: number }> {
  // A failing pre-backup hook stops before any folder exists.
  await context.hooks.lifecycle.promise({ event: 'pre-backup', service }, context);
  const { stamp, dir } = claimBackupDir(context, service);
  const requests = backupRequests(service, entries, dir);
  context.log.event(phase, 'backup-start', { service, at: stamp });
  writeFileAtomic(join(dir, ENTRIES_FILE), `${JSON.stringify(entries)}\n`);
  let bytes = 0;
  // Every command the strategy runs is bounded by the backup deadline, unless it names its own.
  const bounded = withDeadline(context, 'backup');
  try {
    for (const request of requests) {
      context.failpoint(`before-backup-${service}`);
      // The same estimate the dry run shows; without one, progress shows bytes and rate only.
      request.expectedBytes ??= estimates.get(context)?.get(estimateKey(request))
        ?? await context.hooks.sizeBackup.get(request.entry.type)?.promise(request, bounded).catch(() => undefined);
      const result = await context.hooks.backup.get(request.entry.type)!.promise(request, bounded);
      if (!result) throw new ReleaseError('BACKUP_FAILED', `backup ${request.entry.type} of ${service} produced nothing`);
      bytes += result.bytes;
      context.failpoint(`after-backup-${service}`);
    }
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    // The service's folder too, when this was its only backup: a failed backup leaves nothing.
    if (readdirSync(dirname(dir)).length === 0) rmdirSync(dirname(dir));
    context.log.event(phase, 'backup-failed', { service, at: stamp });
    throw diskFullAdvice(context, error, phase === PHASE ? `just release-run ${context.ticket} --from=prepare` : `just release-revert ${context.ticket}`);
  }
  return { stamp, bytes };
}

/**
 * Backs up every changed service, `concurrency` at a time. All are let finish; if any failed, the
 * release stops with the first failure (exit 6) and the others are named.
 */
export async function backUpAll(context: RunContext, state: ReleaseState, sha: string, concurrency: number): Promise<void> {
  const failures: ReleaseError[] = [];
  await pMap(state.services, async (service) => {
    try {
      await backUpService(context, state, sha, service);
    } catch (error) {
      failures.push(toReleaseError(error));
    }
  }, { concurrency });
  if (failures.length === 0) return;
  const [first, ...others] = failures;
  if (first!.code === 'PHASE_FAILED' && first!.reason !== 'HOOK_FAILED') {
    throw new ReleaseError('BACKUP_FAILED', first!.message, { hint: first!.hint, lines: first!.lines, plugin: first!.plugin, hook: first!.hook, cause: first });
  }
  first!.lines.push(...others.map((other) => `also failed: ${other.message}`));
  throw first!;
}
