import { ReleaseError, type ChangedFile, type ExecOptions, type ExecResult, type ReleaseState, type RunContext } from '../../api/index.js';
import { deadline } from '../../plugins/deadlines/index.js';

/**
 * The git commands the plugins share. Arguments are arrays; any ref that came from input or
 * config goes after `--end-of-options` so it can never be read as an option.
 */
export async function gitTry(context: RunContext, args: readonly string[], env: Record<string, string> = {}, io: Pick<ExecOptions, 'input' | 'stdoutTo'> = {}): Promise<ExecResult> {
  // Only a fetch reaches the network; every other git command here is local.
  return context.exec('git', args, { env: { GIT_TERMINAL_PROMPT: '0', LC_ALL: 'C', ...env }, ...io, ...deadline(context, args[0] === 'fetch' ? 'fetch' : 'git') });
}

export async function git(context: RunContext, args: readonly string[], failure = 'PHASE_FAILED' as const, env: Record<string, string> = {}): Promise<string> {
  const result = await gitTry(context, args, env);
  if (result.exitCode !== 0) {
    const why = result.stderr.split('\n').filter(Boolean).slice(-1)[0] ?? `exit ${result.exitCode}`;
    throw new ReleaseError(failure, `git ${args.join(' ')} failed: ${why}`);
  }
  return result.stdout.trim();
}

export const headSha = (context: RunContext) => git(context, ['rev-parse', '--verify', 'HEAD']);

export const resolveSha = (context: RunContext, ref: string) =>
  git(context, ['rev-parse', '--verify', '--end-of-options', `${ref}^{commit}`]);

export async function currentBranch(context: RunContext): Promise<string> {
  const result = await gitTry(context, ['symbolic-ref', '--short', '-q', 'HEAD']);
  return result.exitCode === 0 ? result.stdout.trim() : '';
}

/** Changes to tracked files, and untracked files; the orchestrator's own workspace does not count. */
export async function dirtyPaths(context: RunContext): Promise<string[]> {
  const out = await git(context, ['--no-optional-locks', 'status', '--porcelain', '--untracked-files=all', '--', '.', ':(exclude).asd/workspace']);
  return out.split('\n').filter(Boolean);
}

const GIT_ESCAPES: Record<string, string> = { '\n': '\\n', '\t': '\\t', '\r': '\\r', '"': '\\"', '\\': '\\\\' };

/**
 * A path as one unambiguous line of output: quoted and escaped the way git itself shows it when it
 * holds a newline, a tab, another control character, a quote or a backslash (UTF-8 stays as is).
 */
export function displayPath(path: string): string {
  if (!/[\x00-\x1f\x7f"\\]/.test(path)) return path;
  return `"${path.replace(/[\x00-\x1f\x7f"\\]/g, (char) => GIT_ESCAPES[char] ?? `\\${char.charCodeAt(0).toString(8).padStart(3, '0')}`)}"`;
}

/**
 * Refuses (with `code`) a work tree with uncommitted changes or untracked files; `rerun` is the
 * command to give once it is clean. Ignored files (a host's own .env) are no change.
 */
export async function requireCleanWorkTree(context: RunContext, code: 'PHASE_FAILED' | 'REVERT_BLOCKED', rerun: string): Promise<void> {
  const dirty = await dirtyPaths(context);
  if (dirty.length === 0) return;
  const untracked = dirty.filter((line) => line.startsWith('?? ')).length;
  // An edit of the orchestrator's own files (a prod clone of the orchestrator's repo) has a playbook of its own.
  const ownSource = dirty.some((line) => /^\S{1,2}\s+(core\/|plugins\/|shared\/|api\/|cli\/|release\.config\.ts|package(-lock)?\.json|justfile)/.test(line.trim()));
  throw new ReleaseError(code, `the work tree has ${dirty.length} uncommitted change(s)${untracked ? ` (${untracked} untracked file(s))` : ''}; nothing was changed`, {
    reason: code === 'REVERT_BLOCKED' ? 'REVERT_BLOCKED' : ownSource ? 'ORCHESTRATOR_SOURCE_EDITED' : 'CLONE_REFUSED',
    lines: dirty.slice(0, 20),
    hint: [
      ...(untracked < dirty.length ? ['a prod clone holds no local edits: commit them through a PR, or git stash them'] : []),
      // git stash leaves untracked files where they are; a host's own .env belongs in an ignore list.
      ...(untracked ? ['an untracked file that belongs to this host only (a .env, a secret) goes in .git/info/exclude (or .gitignore through a PR) and is then left alone; any other: remove it or commit it through a PR'] : []),
    ].join('; ') + `, then run ${rerun} again`,
  });
}

export async function parents(context: RunContext, sha: string): Promise<string[]> {
  const line = await git(context, ['rev-list', '--parents', '-n', '1', '--end-of-options', sha]);
  return line.split(' ').slice(1);
}

export async function isAncestor(context: RunContext, ancestor: string, descendant: string): Promise<boolean> {
  const result = await gitTry(context, ['merge-base', '--is-ancestor', '--end-of-options', ancestor, descendant]);
  return result.exitCode === 0;
}

/** The files of the BASE..MERGE diff, renames detected. */
export async function diffFiles(context: RunContext, base: string, merge: string): Promise<ChangedFile[]> {
  const out = await git(context, ['diff', '--name-status', '-z', '-M', '--end-of-options', base, merge]);
  const fields = out.split('\0').filter((field) => field !== '');
  const files: ChangedFile[] = [];
  for (let i = 0; i < fields.length;) {
    const status = fields[i++]!;
    if (status.startsWith('R') || status.startsWith('C')) {
      const from = fields[i++]!;
      files.push({ status: status[0]!, from, path: fields[i++]! });
    } else {
      files.push({ status: status[0]!, path: fields[i++]! });
    }
  }
  return files;
}

/** A file's content at a commit, or undefined when it does not exist there. */
export async function showFile(context: RunContext, sha: string, path: string): Promise<string | undefined> {
  const result = await context.exec('git', ['show', `${sha}:${path}`], deadline(context, 'git'));
  return result.exitCode === 0 ? result.stdout : undefined;
}

/** The state's commits must exist here: a state file copied from another repo is refused (exit 2). */
export async function requireKnownCommits(context: RunContext, state: ReleaseState): Promise<void> {
  for (const [key, sha] of [['BASE_SHA', state.baseSha], ['MERGE_SHA', state.mergeSha]] as const) {
    if (sha === '') continue;
    const found = await gitTry(context, ['cat-file', '-e', `${sha}^{commit}`]);
    if (found.exitCode !== 0) {
      throw new ReleaseError('BAD_INPUT', `state file ${context.stateFile.path}: ${key} ${sha.slice(0, 12)} is not a commit of this repo (${context.repoDir}); the file belongs to another repo`, {
        hint: 'run the verb in the repo the release was made in, or move this state file aside',
        reason: 'STATE_FILE',
      });
    }
  }
}
