/**
 * Backup retention: which releases' backups may go, and removing them (`release prune`, or prepare
 * when the config asks). A release's backups are kept while it is among the newest N, while it is
 * not finished (a resume or a revert needs them), while a revert of it has started and not
 * finished, and while `release-revert` could undo it as documented (HEAD is its MERGE_SHA).
 */
import { existsSync, lstatSync, readdirSync, readFileSync, rmdirSync, rmSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { EXIT_CODES, formatBytes, type ReleaseState, type RunContext } from '../../api/index.js';
import { AuditLog, BACKUP_STAMP as STAMP, StateFile, pasteable, workspacePaths } from '../../core/index.js';
import { headSha } from '../../shared/git/git.js';

const TICKET = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;

export interface TicketBackup {
  service: string;
  stamp: string;
  dir: string;
  present: boolean;
}

/**
 * Where a release stands, as its state file and audit log tell: `unfinished` (release-run never
 * passed verify), `reverting` (a revert changed something and did not finish), `revertible`
 * (released, and HEAD is its MERGE_SHA: release-revert would restore its backups), `released`
 * (released, and the clone has moved on), `reverted`.
 */
export type Standing = 'unfinished' | 'reverting' | 'revertible' | 'released' | 'reverted' | 'damaged';

export interface ReleaseRecord {
  ticket: string;
  /** When the release started (its log's first line, else its state file's time), ISO UTC, sortable: newest first. */
  startedAt: string;
  standing: Standing;
  backups: TicketBackup[];
}

const logEvents = (workspaceDir: string, ticket: string) => new AuditLog(workspacePaths(join(workspaceDir, '..', '..'), ticket).logFile, ticket).events();

/** The backups a release took: its state's BACKUPS and every `event=backup` of its log (an attempt it replaced included). */
function backupsOf(workspaceDir: string, state: ReleaseState | undefined, events: Record<string, string>[]): TicketBackup[] {
  const seen = new Map<string, TicketBackup>();
  const add = (service: string | undefined, stamp: string | undefined) => {
    if (!service || !stamp || !TICKET.test(service) || !STAMP.test(stamp)) return;
    const dir = join(workspaceDir, 'backups', service, stamp);
    seen.set(dir, { service, stamp, dir, present: existsSync(dir) });
  };
  for (const [service, stamp] of Object.entries(state?.backups ?? {})) add(service, stamp);
  for (const event of events) if (event.event === 'backup') add(event.service, event.at);
  return [...seen.values()];
}

/** A revert run that stopped before it changed anything: the lock (3), or bad input or a block (2, 8) in its first phase. */
function changedNothing(run: Record<string, string>[]): boolean {
  const end = [...run].reverse().find((event) => event.phase === 'orchestrator' && (event.event === 'failed' || event.event === 'interrupted'));
  if (!end || run.some((event) => event.phase === 'orchestrator' && event.event === 'done')) return false;
  const rc = Number(end.rc);
  return rc === EXIT_CODES.LOCKED || ((rc === EXIT_CODES.BAD_INPUT || rc === EXIT_CODES.REVERT_BLOCKED) && (end.phase_failed === 'restore' || end.phase_failed === 'orchestrator'));
}

function standingOf(events: Record<string, string>[], state: ReleaseState, head: string | undefined): Standing {
  const runs: { verb: string; events: Record<string, string>[] }[] = [];
  for (const event of events) {
    if (event.phase === 'orchestrator' && event.event === 'start') runs.push({ verb: event.verb ?? '', events: [] });
    runs.at(-1)?.events.push(event);
  }
  let released = false;
  let reverted = false;
  let reverting = false;
  for (const run of runs) {
    if (run.verb === 'release-run' && run.events.some((e) => e.phase === 'verify' && e.event === 'done')) released = true;
    if (run.verb !== 'release-revert') continue;
    if (run.events.some((e) => e.phase === 'revert-verify' && e.event === 'done')) reverted = true;
    else if (!changedNothing(run.events)) reverting = true;
  }
  if (reverted) return 'reverted';
  if (reverting) return 'reverting';
  if (!released) return 'unfinished';
  return head !== undefined && head === state.mergeSha ? 'revertible' : 'released';
}

/** The log's first timestamp (whole seconds), then the log file's creation time in ms for releases started within one second. */
function startedAt(logFile: string, stateFile: string): string {
  try {
    const first = readFileSync(logFile, 'utf8').slice(0, 25);
    const born = statSync(logFile).birthtimeMs || statSync(logFile).ctimeMs;
    if (/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00$/.test(first)) return `${first.replace('+00:00', 'Z')} ${born.toFixed(3).padStart(20, '0')}`;
  } catch { /* no log: the state file's time */ }
  return statSync(stateFile).mtime.toISOString();
}

/** Every release this workspace records (a state file in releases/), newest first. */
export async function loadReleases(context: RunContext): Promise<ReleaseRecord[]> {
  const releasesDir = join(context.workspaceDir, 'releases');
  if (!existsSync(releasesDir)) return [];
  const head = await headSha(context).catch(() => undefined);
  const records: ReleaseRecord[] = [];
  for (const name of readdirSync(releasesDir)) {
    if (!name.endsWith('.env')) continue;
    const ticket = name.slice(0, -'.env'.length);
    if (!TICKET.test(ticket)) continue;
    const paths = workspacePaths(context.repoDir, ticket);
    const events = new AuditLog(paths.logFile, ticket).events();
    let state: ReleaseState | undefined;
    try {
      state = new StateFile(paths.stateFile).read();
    } catch {
      state = undefined;
    }
    records.push({
      ticket,
      startedAt: startedAt(paths.logFile, paths.stateFile),
      standing: state ? standingOf(events, state, head) : 'damaged',
      backups: backupsOf(context.workspaceDir, state, events),
    });
  }
  return records.sort((a, b) => b.startedAt.localeCompare(a.startedAt) || b.ticket.localeCompare(a.ticket));
}

/** The space a folder takes on disk (allocated blocks), without following symlinks. */
export function diskUsage(path: string): number {
  const stat = lstatSync(path, { throwIfNoEntry: false });
  if (!stat) return 0;
  let bytes = stat.blocks * 512;
  if (stat.isDirectory()) for (const name of readdirSync(path)) bytes += diskUsage(join(path, name));
  return bytes;
}

export interface PruneCandidate {
  ticket: string;
  backup: TicketBackup;
  bytes: number;
  /** The filesystem (st_dev) that removing it frees space on. */
  dev: number;
}

export interface PrunePlan {
  keep: number;
  remove: PruneCandidate[];
  /** Releases whose present backups stay, and why. */
  kept: { ticket: string; why: string }[];
  /** Backup folders no release records: left alone. */
  unclaimed: string[];
}

function keptBecause(record: ReleaseRecord, index: number, keep: number, current: string | undefined): string | undefined {
  if (record.ticket === current) return 'the release running now';
  if (index < keep) return `one of the newest ${keep} release(s)`;
  switch (record.standing) {
    case 'unfinished': return `not finished: resume it (just release-run ${record.ticket} --from=PHASE) or undo it (just release-revert ${record.ticket}) first`;
    case 'reverting': return `a revert of it has not finished (just release-revert ${record.ticket})`;
    case 'revertible': return `HEAD is its MERGE_SHA: just release-revert ${record.ticket} would restore them`;
    case 'damaged': return 'its state file is damaged: read by hand before removing anything';
    default: return undefined;
  }
}

/** What `release prune --keep=KEEP` would remove, from records loaded once (several KEEPs can be tried). */
export function planPrune(context: RunContext, records: ReleaseRecord[], keep: number): PrunePlan {
  const current = context.verb === 'release' ? undefined : context.ticket;
  const plan: PrunePlan = { keep, remove: [], kept: [], unclaimed: [] };
  records.forEach((record, index) => {
    const present = record.backups.filter((backup) => backup.present);
    if (present.length === 0) return;
    const why = keptBecause(record, index, keep, current);
    if (why) {
      plan.kept.push({ ticket: record.ticket, why });
      return;
    }
    for (const backup of present) plan.remove.push({ ticket: record.ticket, backup, bytes: diskUsage(backup.dir), dev: statSync(backup.dir).dev });
  });
  const claimed = new Set(records.flatMap((record) => record.backups.map((backup) => backup.dir)));
  const backupsDir = join(context.workspaceDir, 'backups');
  for (const service of existsSync(backupsDir) ? readdirSync(backupsDir) : []) {
    const serviceDir = join(backupsDir, service);
    if (!statSync(serviceDir).isDirectory()) continue;
    for (const stamp of readdirSync(serviceDir)) if (!claimed.has(join(serviceDir, stamp))) plan.unclaimed.push(join(serviceDir, stamp));
  }
  return plan;
}

/** Bytes a plan frees on the filesystem `dev`. */
export const freedOn = (plan: PrunePlan, dev: number) => plan.remove.filter((c) => c.dev === dev).reduce((sum, c) => sum + c.bytes, 0);

const ticketsOf = (candidates: PruneCandidate[]) => [...new Set(candidates.map((c) => c.ticket))];

/**
 * Removes what the plan says (or, in a dry run, says what it would), one line per folder, and
 * logs `phase=prune event=pruned` in each pruned release's own audit log. `by` names who pruned.
 */
export function carryOutPrune(context: RunContext, plan: PrunePlan, print: (line: string) => void, by: string): { removed: string[]; freedBytes: number } {
  const say = (line: string) => print(pasteable(line));
  const verb = context.dryRun ? 'would remove' : 'removed';
  const shown = (dir: string) => relative(context.repoDir, dir) || dir;
  let freedBytes = 0;
  const removed: string[] = [];
  for (const candidate of plan.remove) {
    const { backup } = candidate;
    if (!context.dryRun) {
      rmSync(backup.dir, { recursive: true, force: true });
      const serviceDir = join(backup.dir, '..');
      if (readdirSync(serviceDir).length === 0) rmdirSync(serviceDir);
      const log = new AuditLog(workspacePaths(context.repoDir, candidate.ticket).logFile, candidate.ticket);
      // A line cut off by a crash is moved aside first, as the ticket's own next run would.
      try { log.repair(); } catch { /* damaged in the middle: appending does not make it worse */ }
      log.event('prune', 'pruned', { service: backup.service, at: backup.stamp, bytes: candidate.bytes, by });
    }
    freedBytes += candidate.bytes;
    removed.push(backup.dir);
    say(`${verb} ${shown(backup.dir)} (ticket ${candidate.ticket}, ${formatBytes(candidate.bytes)})`);
  }
  for (const kept of plan.kept) say(`kept the backups of ticket ${kept.ticket}: ${kept.why}`);
  if (plan.unclaimed.length > 0) {
    say(`left alone: ${plan.unclaimed.length} backup folder(s) no release records (${plan.unclaimed.slice(0, 3).map(shown).join(', ')}${plan.unclaimed.length > 3 ? ', ...' : ''}); remove them by hand once you know nobody needs them`);
  }
  const releases = ticketsOf(plan.remove).length;
  say(plan.remove.length === 0
    ? 'nothing to prune'
    : `${context.dryRun ? 'would free' : 'freed'} ${formatBytes(freedBytes)}: ${plan.remove.length} backup folder(s) of ${releases} release(s)`);
  return { removed, freedBytes };
}

export type BackupsPresence = 'present' | 'partly pruned' | 'pruned' | 'none';

/**
 * Whether a ticket's backups are still on disk, for `release history`: `none` when the release
 * recorded no backup; `pruned` when `release prune` (or anything else) removed them all.
 */
export function backupsPresence(workspaceDir: string, ticket: string): BackupsPresence {
  if (!TICKET.test(ticket)) return 'none';
  const paths = workspacePaths(join(workspaceDir, '..', '..'), ticket);
  let state: ReleaseState | undefined;
  try { state = new StateFile(paths.stateFile).read(); } catch { state = undefined; }
  const backups = backupsOf(workspaceDir, state, logEvents(workspaceDir, ticket));
  const present = backups.filter((backup) => backup.present).length;
  if (backups.length === 0) return 'none';
  return present === backups.length ? 'present' : present === 0 ? 'pruned' : 'partly pruned';
}
