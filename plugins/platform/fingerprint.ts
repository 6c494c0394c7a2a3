import { createHash } from 'node:crypto';
import type { RunContext } from '../../api/index.js';
import { git } from '../../shared/git/git.js';

/** One sha256 of several parts, each ended by a NUL so that ("ab", "c") and ("a", "bc") differ. */
export function contentHash(...parts: (string | Buffer)[]): string {
  const hash = createHash('sha256');
  for (const part of parts) hash.update(part).update('\0');
  return hash.digest('hex');
}

/**
 * One hash of repo paths as HEAD (or `commit`) holds them (git's object ids, so no file is read): what a runtime
 * records of a service's build contexts and mounted files to tell later whether they changed.
 */
export async function treeHash(context: RunContext, paths: readonly string[], commit = 'HEAD'): Promise<string> {
  if (paths.length === 0) return '';
  return contentHash(await git(context, ['ls-tree', '--full-tree', commit, '--', ...paths]));
}
