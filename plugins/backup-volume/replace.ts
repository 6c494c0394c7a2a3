/**
 * Replacing a folder's contents with a fully extracted copy, by renames on one filesystem: the old
 * entries move into a holding folder, the new ones move in, the holding folder is deleted. Only
 * top-level entries are renamed and the holding folder is removed without following symlinks, so
 * nothing outside the folder is ever touched. The folder itself (its inode, so a mount of it) stays.
 *
 * A holding folder beside the target is deleted in the background, off the restore's critical
 * path (deleting a big tree costs as much as extracting it); the run does not end before that is
 * done, and one a killed run left is removed by the next restore of that target.
 */
import { chownSync, chmodSync, lstatSync, mkdtempSync, readdirSync, renameSync, rmSync, rmdirSync, utimesSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { isMountPoint } from './source.js';

export interface Staging {
  /** Where the staging folders are made: beside the target, or inside it when the target is a mount point. */
  parent: string;
  /** Their name prefix; inside the target, entries with it are never part of the data. */
  prefix: string;
  inside: boolean;
}

/**
 * Staging beside `target` keeps the extraction on the target's filesystem (renames, not copies).
 * A target that is itself a mount point has no such sibling: staging goes inside it instead.
 */
export function stagingFor(target: string): Staging {
  if (isMountPoint(target) || dirname(target) === target) {
    return { parent: target, prefix: '.release-restore-', inside: true };
  }
  return { parent: dirname(target), prefix: `.${basename(target)}.release-restore-`, inside: false };
}

/** Holding folders being deleted in the background, and their deletions. */
const deleting = new Map<string, Promise<void>>();

function deleteInBackground(folder: string): void {
  const deletion = rm(folder, { recursive: true, force: true }).catch(() => undefined).finally(() => deleting.delete(folder));
  deleting.set(folder, deletion);
}

/** Resolves once every old content swapped out so far is deleted. */
export async function settleDeletions(): Promise<void> {
  await Promise.all(deleting.values());
}

/** Removes staging folders an interrupted restore left behind (their data is in the archive). */
export function removeLeftovers(staging: Staging): string[] {
  let names: string[];
  try {
    names = readdirSync(staging.parent);
  } catch {
    return [];
  }
  const stale = names.filter((name) => name.startsWith(staging.prefix) && !deleting.has(join(staging.parent, name)));
  for (const name of stale) rmSync(join(staging.parent, name), { recursive: true, force: true });
  return stale;
}

export function makeStagingDir(staging: Staging, kind: 'new' | 'old'): string {
  return mkdtempSync(join(staging.parent, `${staging.prefix}${kind}-`));
}

export class ReplaceError extends Error {
  constructor(message: string, readonly rolledBack: boolean, readonly keptIn?: string) {
    super(message);
  }
}

/**
 * Makes `target` hold exactly what `staged` holds (then removes `staged`), with `staged`'s own
 * owner, mode and times. On a failure midway every rename is undone and ReplaceError thrown.
 */
export function replaceContents(target: string, staged: string, staging: Staging): void {
  const holding = makeStagingDir(staging, 'old');
  const isOurs = (name: string) => staging.inside && name.startsWith(staging.prefix);
  const movedOut: string[] = [];
  const movedIn: string[] = [];
  try {
    for (const name of readdirSync(target)) {
      if (isOurs(name)) continue;
      renameSync(join(target, name), join(holding, name));
      movedOut.push(name);
    }
    for (const name of readdirSync(staged)) {
      renameSync(join(staged, name), join(target, name));
      movedIn.push(name);
    }
  } catch (error) {
    const why = (error as Error).message;
    try {
      for (const name of movedIn.reverse()) renameSync(join(target, name), join(staged, name));
      for (const name of movedOut.reverse()) renameSync(join(holding, name), join(target, name));
      rmdirSync(holding);
    } catch (undo) {
      throw new ReplaceError(`${why}; putting the old contents back failed too (${(undo as Error).message})`, false, holding);
    }
    throw new ReplaceError(why, true);
  }
  const root = lstatSync(staged);
  // chown first: it clears setuid/setgid bits that chmod then sets.
  chownSync(target, root.uid, root.gid);
  chmodSync(target, root.mode & 0o7777);
  utimesSync(target, root.atime, root.mtime);
  rmdirSync(staged);
  // Inside the target (a mount point) the service would see it: gone before the restore ends.
  if (staging.inside) rmSync(holding, { recursive: true, force: true });
  else deleteInBackground(holding);
}
