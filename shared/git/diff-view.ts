import { execFileSync } from 'node:child_process';
import { Writable } from 'node:stream';
import type { ChangedFile, DiffView, RunContext } from '../../api/index.js';
import { ReleaseError } from '../../api/index.js';
import { diffFiles, gitTry } from './git.js';

/** The folder whose entries are the platform's services; the built-in rules read each one's manifest and compose file. */
const SERVICES_DIR = 'packages';
const SERVICE_FILES = ['manifest.yaml', 'compose.yaml'];

/**
 * How long a classifier rule's synchronous read of a file the prefetch did not hold may take. The
 * classify hook is synchronous (a bail hook: rules answer in order, the first wins), so a platform
 * rule that reads a file nobody foresaw is served by one bounded `git cat-file` run in place.
 */
const SYNC_READ_TIMEOUT_MS = 60_000;

/** `git cat-file --batch` output: each requested `<sha>:<path>`'s text, undefined when it is not a blob there. */
function parseBatch(output: Buffer, paths: readonly string[]): Map<string, string | undefined> {
  const found = new Map<string, string | undefined>();
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

/** cat-file reads one path a line: a path with a newline cannot be asked for (and holds no config). */
const askable = (paths: readonly string[]) => paths.filter((path) => !path.includes('\n'));
const batchInput = (sha: string, paths: readonly string[]) => paths.map((path) => `${sha}:${path}`).join('\n') + '\n';

/** Reads files at a commit in one `git cat-file --batch`, through the run's exec (deadline, abort). */
async function readAtCommit(context: RunContext, sha: string, paths: readonly string[]): Promise<Map<string, string | undefined>> {
  const asked = askable(paths);
  if (asked.length === 0) return new Map(paths.map((path) => [path, undefined]));
  const chunks: Buffer[] = [];
  const sink = new Writable({ write(chunk: Buffer, _encoding, done) { chunks.push(chunk); done(); } });
  const result = await gitTry(context, ['cat-file', '--batch'], {}, { input: batchInput(sha, asked), stdoutTo: sink });
  if (result.exitCode !== 0) throw new ReleaseError('PHASE_FAILED', `git cat-file --batch at ${sha.slice(0, 12)} failed: ${result.stderr.trim().split('\n').pop() ?? `exit ${result.exitCode}`}`);
  const found = parseBatch(Buffer.concat(chunks), asked);
  for (const path of paths) if (!found.has(path)) found.set(path, undefined);
  return found;
}

/** The fallback for a read the prefetch did not foresee: synchronous, bounded (see SYNC_READ_TIMEOUT_MS). */
function readAtCommitNow(repoDir: string, sha: string, paths: readonly string[]): Map<string, string | undefined> {
  const asked = askable(paths);
  const found = asked.length === 0 ? new Map<string, string | undefined>() : parseBatch(execFileSync('git', ['cat-file', '--batch'], {
    cwd: repoDir, input: batchInput(sha, asked), maxBuffer: 1024 * 1024 * 1024, env: { ...process.env, LC_ALL: 'C' }, timeout: SYNC_READ_TIMEOUT_MS,
  }), asked);
  for (const path of paths) if (!found.has(path)) found.set(path, undefined);
  return found;
}

/** The names of a folder's entries at a commit (none when it does not exist there). */
async function listAtCommit(context: RunContext, sha: string, folder: string): Promise<string[]> {
  const result = await gitTry(context, ['ls-tree', '--name-only', '-z', sha, '--', `${folder.replace(/\/$/, '')}/`]);
  if (result.exitCode !== 0) return [];
  return result.stdout.split('\0').filter(Boolean).map((path) => path.slice(path.lastIndexOf('/') + 1));
}

/**
 * The BASE..MERGE diff with files read at MERGE, for the classifier rules. What the built-in
 * rules read (every service's manifest and compose file, the services folder's listing) is read
 * before the hook runs, asynchronously and through the run's exec; `known` passes that in.
 */
export function createDiffView(repoDir: string, base: string, merge: string, files: readonly ChangedFile[], known?: { files: Map<string, string | undefined>; lists: Map<string, string[]> }): DiffView {
  const cache = new Map(known?.files ?? []);
  const lists = new Map(known?.lists ?? []);
  const view: DiffView = {
    base,
    merge,
    files,
    prefetch(paths) {
      const missing = [...new Set(paths)].filter((path) => !cache.has(path));
      if (missing.length === 0) return;
      for (const [path, text] of readAtCommitNow(repoDir, merge, missing)) cache.set(path, text);
    },
    read(path) {
      if (!cache.has(path)) view.prefetch([path]);
      return cache.get(path);
    },
    list(folder) {
      const key = folder.replace(/\/$/, '');
      if (!lists.has(key)) {
        try {
          const out = execFileSync('git', ['ls-tree', '--name-only', '-z', merge, '--', `${key}/`], { cwd: repoDir, maxBuffer: 256 * 1024 * 1024, timeout: SYNC_READ_TIMEOUT_MS });
          lists.set(key, out.toString('utf8').split('\0').filter(Boolean).map((path) => path.slice(path.lastIndexOf('/') + 1)));
        } catch {
          lists.set(key, []);
        }
      }
      return lists.get(key)!;
    },
  };
  return view;
}

export async function diffView(context: RunContext, base: string, merge: string): Promise<DiffView> {
  const files = await diffFiles(context, base, merge);
  const services = await listAtCommit(context, merge, SERVICES_DIR);
  const known = await readAtCommit(context, merge, services.flatMap((service) => SERVICE_FILES.map((file) => `${SERVICES_DIR}/${service}/${file}`)));
  return createDiffView(context.repoDir, base, merge, files, { files: known, lists: new Map([[SERVICES_DIR, services]]) });
}
