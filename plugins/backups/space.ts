/**
 * Space before work: the room prepare's backups (their size estimates) and revert's restores
 * (their staging copies) need is checked on each filesystem they write to, before the first byte
 * is written or any service is stopped. Not enough is exit 6 naming the sizes, the free space, the
 * folder and the `release prune` that would make room.
 */
import { existsSync, statSync, statfsSync } from 'node:fs';
import { dirname } from 'node:path';
import { ReleaseError, formatBytes, type RunContext, type SpaceNeed } from '../../api/index.js';
import type { DiskSpaceOptions, RetentionOptions } from './options.js';
import { freedOn, loadReleases, planPrune, type ReleaseRecord } from './retention.js';

export interface Filesystem {
  /** st_dev: two paths on one filesystem share it. */
  dev: number;
  /** The path it was measured at (the nearest folder that exists). */
  at: string;
  free: number;
  total: number;
}

/** The filesystem that holds `path`, or will once it is made (measured at its nearest existing parent). */
export function filesystemOf(path: string): Filesystem {
  let at = path;
  while (!existsSync(at) && dirname(at) !== at) at = dirname(at);
  const stats = statfsSync(at);
  return { dev: statSync(at).dev, at, free: stats.bavail * stats.bsize, total: stats.blocks * stats.bsize };
}

export interface SpaceCheck {
  /** "the backups of this release", "the restores of this release". */
  purpose: string;
  /** What is still true when it refuses: "nothing was changed". */
  unchanged: string;
  /** The phase whose lines it prints. */
  phase: string;
  /** The command to run once there is room, as the operator pastes it (`just release-run T`). */
  rerun: string;
  /** The folder to name when it is on the filesystem measured (the backups folder rather than one service's). */
  folder?: string;
  /** Bytes a prune already planned (a dry run's autoPrune) frees, per filesystem. */
  credit?: Map<number, number>;
}

/** `just release prune [--keep=K]` that frees `short` bytes on `dev`, or what prune can do at most. */
function pruneAdvice(context: RunContext, records: ReleaseRecord[], retention: RetentionOptions, dev: number, short: number): { line: string; command?: string } {
  for (let keep = retention.keep; keep >= 0; keep--) {
    const plan = planPrune(context, records, keep);
    const freed = freedOn(plan, dev);
    if (freed >= short) {
      const tickets = [...new Set(plan.remove.filter((c) => c.dev === dev).map((c) => c.ticket))];
      const command = `just release prune${keep === retention.keep ? '' : ` --keep=${keep}`}`;
      return { command, line: `${command} would free about ${formatBytes(freed)} there: the backups of ticket(s) ${tickets.join(' ')}` };
    }
  }
  const most = planPrune(context, records, 0);
  const freed = freedOn(most, dev);
  return {
    line: freed > 0
      ? `release prune can free only ${formatBytes(freed)} there (just release prune --keep=0); the other backups are kept: ${most.kept.map((k) => `${k.ticket} (${k.why})`).join('; ') || 'none'}`
      : `release prune can free nothing there${most.kept.length > 0 ? `: kept ${most.kept.map((k) => `${k.ticket} (${k.why})`).join('; ')}` : ''}`,
  };
}

/**
 * Checks that every filesystem `needs` write to has room for them plus the margin and keepFree;
 * prints one line per filesystem. Throws BACKUP_FAILED (exit 6) when one has not.
 */
export async function requireSpace(context: RunContext, needs: SpaceNeed[], options: DiskSpaceOptions, retention: RetentionOptions, check: SpaceCheck): Promise<void> {
  const groups = new Map<number, { fs: Filesystem; needs: SpaceNeed[] }>();
  for (const need of needs) {
    const fs = filesystemOf(need.path);
    const group = groups.get(fs.dev) ?? { fs, needs: [] };
    group.needs.push(need);
    groups.set(fs.dev, group);
  }
  for (const { fs, needs: onIt } of groups.values()) {
    const shown = check.folder !== undefined && existsSync(check.folder) && statSync(check.folder).dev === fs.dev ? check.folder : fs.at;
    const estimate = onIt.reduce((sum, need) => sum + need.bytes, 0);
    const needed = Math.ceil(estimate * (1 + options.marginPercent / 100)) + options.keepFree;
    const free = fs.free + (check.credit?.get(fs.dev) ?? 0);
    const sizes = `about ${formatBytes(estimate)} + ${options.marginPercent}% margin, with ${formatBytes(options.keepFree)} to stay free`;
    if (free >= needed) {
      context.out.phase(check.phase, `space for ${check.purpose}: ${sizes}; ${formatBytes(free)} free in ${shown}`);
      continue;
    }
    if (options.whenShort === 'warn') {
      context.out.warn(`not enough space for ${check.purpose}: ${formatBytes(needed)} needed (${sizes}) but ${formatBytes(free)} free in ${shown}; going on (diskSpace.whenShort is warn)`);
      context.log.event(check.phase, 'space-short', { needed, free, folder: shown });
      continue;
    }
    const records = await loadReleases(context);
    const advice = pruneAdvice(context, records, retention, fs.dev, needed - free);
    throw new ReleaseError('BACKUP_FAILED', `not enough space for ${check.purpose}: ${formatBytes(needed)} needed (${sizes}) but ${formatBytes(free)} free in ${shown}; ${check.unchanged}`, {
      reason: 'DISK_FULL',
      lines: [
        ...onIt.map((need) => `${need.what}: about ${formatBytes(need.bytes)}`),
        `the filesystem of ${shown}: ${formatBytes(fs.free)} free of ${formatBytes(fs.total)} (df -h ${shown}); ${formatBytes(needed - free)} short`,
        advice.line,
        'margin and keepFree: defaultPlugins({ diskSpace: { marginPercent, keepFree } }) in release.config.ts',
      ],
      hint: advice.command
        ? `make room with ${advice.command}, then ${check.rerun}`
        : `free at least ${formatBytes(needed - free)} on the filesystem of ${shown} (df -h ${shown}), then ${check.rerun}`,
    });
  }
}
