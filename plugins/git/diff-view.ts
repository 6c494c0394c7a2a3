import { execFileSync } from 'node:child_process';
import type { ChangedFile, DiffView, RunContext } from '../../api/index.js';
import { diffFiles } from './git.js';

/**
 * Reads files at one commit with a single `git cat-file --batch` per prefetch. Synchronous on
 * purpose: classifier rules are a sync bail hook, and one batch for a whole diff costs a few ms.
 */
function readAtCommit(repoDir: string, sha: string, paths: readonly string[]): Map<string, string | undefined> {
  const found = new Map<string, string | undefined>();
  // cat-file reads one path a line: a path with a newline cannot be asked for (and holds no config).
  for (const path of paths.filter((p) => p.includes('\n'))) found.set(path, undefined);
  paths = paths.filter((path) => !path.includes('\n'));
  if (paths.length === 0) return found;
  const output = execFileSync('git', ['cat-file', '--batch'], {
    cwd: repoDir,
    input: paths.map((path) => `${sha}:${path}`).join('\n') + '\n',
    maxBuffer: 1024 * 1024 * 1024,
    env: { ...process.env, LC_ALL: 'C' },
  });
  let at = 0;
  for (const path of paths) {
    const headerEnd = output.indexOf(0x0a, at);
    const header = output.subarray(at, headerEnd).toString('utf8');
    at = headerEnd + 1;
    const match = /^[0-9a-f]+ (\w+) (\d+)$/.exec(header);
    if (!match) {
      found.set(path, undefined); // "<object> missing" (or ambiguous): not at that commit
      continue;
    }
    const size = Number(match[2]);
    found.set(path, match[1] === 'blob' ? output.subarray(at, at + size).toString('utf8') : undefined);
    at += size + 1;
  }
  return found;
}

/** The BASE..MERGE diff with files read at MERGE on demand, for the classifier rules. */
export function createDiffView(repoDir: string, base: string, merge: string, files: readonly ChangedFile[]): DiffView {
  const cache = new Map<string, string | undefined>();
  const view: DiffView = {
    base,
    merge,
    files,
    prefetch(paths) {
      const missing = [...new Set(paths)].filter((path) => !cache.has(path));
      for (const [path, text] of readAtCommit(repoDir, merge, missing)) cache.set(path, text);
    },
    read(path) {
      if (!cache.has(path)) view.prefetch([path]);
      return cache.get(path);
    },
    list(folder) {
      try {
        const out = execFileSync('git', ['ls-tree', '--name-only', '-z', merge, '--', `${folder.replace(/\/$/, '')}/`], { cwd: repoDir, maxBuffer: 256 * 1024 * 1024 });
        return out.toString('utf8').split('\0').filter(Boolean).map((path) => path.slice(path.lastIndexOf('/') + 1));
      } catch {
        return [];
      }
    },
  };
  return view;
}

export async function diffView(context: RunContext, base: string, merge: string): Promise<DiffView> {
  return createDiffView(context.repoDir, base, merge, await diffFiles(context, base, merge));
}
