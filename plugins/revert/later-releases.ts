import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type ReleaseState, type RunContext } from '../../api/index.js';
import { listTickets, readTicketHistory } from '../../core/index.js';
import { diffFiles, git, gitTry, isAncestor, parents } from '../../shared/git/git.js';

/** A release this clone made after the one being reverted, whose commits HEAD holds. */
export interface LaterRelease {
  ticket: string;
  mergeSha: string;
  /** When its last run ended, as the history records it. */
  ended: string | null;
  /** The services both releases touched. */
  services: string[];
  /** The files both releases changed. */
  files: string[];
}

export interface LaterWork {
  later: LaterRelease[];
  /** Files this release changed that differ at HEAD from MERGE_SHA (by any commit since). */
  changedSince: string[];
}

const touchedPaths = async (context: RunContext, base: string, merge: string) =>
  new Set((await diffFiles(context, base, merge)).flatMap((file) => (file.from ? [file.from, file.path] : [file.path])));

/**
 * What the commits after this release's MERGE_SHA did to what it released: the later releases of
 * this clone (not reverted since) that touched the same services or files, newest first, and the
 * files that differ at HEAD. Restoring this release's backups or reverting its commits would undo
 * that work, so the revert refuses unless all of it is empty.
 */
export async function laterWork(context: RunContext, state: ReleaseState, head: string): Promise<LaterWork> {
  const ours = await touchedPaths(context, state.baseSha, state.mergeSha);
  const changedSince = [...await touchedPaths(context, state.mergeSha, head)].filter((path) => ours.has(path)).sort();
  const later: LaterRelease[] = [];
  for (const ticket of listTickets(context.workspaceDir)) {
    if (ticket === context.ticket) continue;
    const record = readTicketHistory(context.workspaceDir, ticket);
    const theirs = record?.state;
    if (!record || !theirs?.mergeSha || theirs.mergeSha === state.mergeSha) continue;
    const last = [...record.runs].reverse().find((run) => run.result !== 'running');
    if (last?.verb === 'release-revert' && last.result === 'reverted') continue;
    if (!(await isAncestor(context, state.mergeSha, theirs.mergeSha)) || !(await isAncestor(context, theirs.mergeSha, head))) continue;
    const services = theirs.services.filter((service) => state.services.includes(service));
    const files = [...await touchedPaths(context, theirs.baseSha, theirs.mergeSha)].filter((path) => ours.has(path)).sort();
    if (services.length > 0 || files.length > 0) later.push({ ticket, mergeSha: theirs.mergeSha, ended: last?.ended ?? null, services, files });
  }
  // Newest first: the order they must be reverted in.
  const depth = new Map(await Promise.all(later.map(async (release) => [release.ticket, Number(await git(context, ['rev-list', '--count', release.mergeSha]))] as const)));
  later.sort((a, b) => depth.get(b.ticket)! - depth.get(a.ticket)!);
  return { later, changedSince };
}

/**
 * The tree HEAD has once this release's changes are taken out of it, built in a private index so
 * neither the work tree nor the clone's index is touched (a dry run and the check before any
 * restore use it too). A change that no longer applies names its files instead.
 */
export async function revertedTree(context: RunContext, state: ReleaseState, head: string): Promise<{ tree: string } | { conflicts: string[] }> {
  const scratch = mkdtempSync(join(tmpdir(), 'ro-revert-index-'));
  const env = { GIT_INDEX_FILE: join(scratch, 'index') };
  try {
    await git(context, ['read-tree', head], 'PHASE_FAILED', env);
    const mergeParents = await parents(context, state.mergeSha);
    // A merge is reverted against its first parent; a fast-forwarded range as one diff.
    const from = mergeParents.length === 2 && mergeParents[0] === state.baseSha ? mergeParents[0]! : state.baseSha;
    const patch = join(scratch, 'release.patch');
    await git(context, ['diff', '--binary', '--full-index', `--output=${patch}`, '--end-of-options', from, state.mergeSha]);
    const applied = await gitTry(context, ['apply', '--cached', '--reverse', '--3way', patch], env);
    if (applied.exitCode !== 0) {
      const conflicts = [...new Set([...applied.output.matchAll(/^(?:error: patch failed: (.+?):\d+|error: (.+?): does not (?:exist in|match) index|U (.+))$/gm)].map((m) => m[1] ?? m[2] ?? m[3]!))];
      return { conflicts: conflicts.length > 0 ? conflicts : applied.output.split('\n').filter(Boolean).slice(-5) };
    }
    return { tree: await git(context, ['write-tree'], 'PHASE_FAILED', env) };
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}
