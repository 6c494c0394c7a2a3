/**
 * Every command the orchestrator prints for an operator to paste is written here, the way the
 * operator invoked the verb: a justfile recipe sets RELEASE_INVOKED_VIA to the command that runs
 * its recipes (`just`, or `just -f /path/justfile`), and the printed line starts with it;
 * otherwise the verb's bin name (`release-run`, on PATH after the README's install) is printed.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const INVOKED_VIA_ENV = 'RELEASE_INVOKED_VIA';

/** The orchestrator's own docs folder (beside dist/), which the operator's platform repo lacks. */
export const DOCS_DIR = fileURLToPath(new URL('../../docs/', import.meta.url));

/** One argument as a POSIX shell reads it back unchanged. */
export function shellQuote(arg: string): string {
  if (/^[A-Za-z0-9_\-=.,/:@+%]+$/.test(arg)) return arg;
  return `'${arg.replace(/'/g, `'\\''`)}'`;
}

/** How the operator runs the verbs: `just`, `just -f FILE`, or '' for the bin names. */
export function invokedVia(env: NodeJS.ProcessEnv = process.env): string {
  return (env[INVOKED_VIA_ENV] ?? '').trim();
}

/** The line to paste to run `verb args...` the way this operator runs verbs. */
export function commandLine(verb: string, args: readonly string[] = [], env: NodeJS.ProcessEnv = process.env): string {
  const via = invokedVia(env);
  return [...(via ? [via] : []), verb, ...args.map(shellQuote)].join(' ');
}

/**
 * Rewrites commands written as `just release-run ...` (in playbooks and hints) into this
 * operator's form; prose that merely names a verb is left alone.
 */
export function pasteable(text: string, env: NodeJS.ProcessEnv = process.env): string {
  const via = invokedVia(env);
  return docsLinks(text).replace(/\bjust (release-run|release-revert|release)(?=\s|$|`|")/g, (_match, verb: string) => (via ? `${via} ${verb}` : verb));
}

/**
 * `docs/operations.md` in a message means the orchestrator's docs, not a file of the platform repo
 * the operator stands in: written as the path that opens on this host.
 */
export function docsLinks(text: string, docsDir = DOCS_DIR): string {
  return text.replace(/(?<![\w/.-])docs\/([a-z-]+\.md)\b/g, (match, name: string) => {
    const path = join(docsDir, name);
    return existsSync(path) ? path : match;
  });
}
