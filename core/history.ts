import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { LOG_LINE } from './audit-log.js';
import { parseState, type ReleaseState } from './state.js';
import { liveLockHolder } from './lock.js';
import { EXIT_CODES } from './errors.js';

/**
 * What happened on this clone, read back from the state files and audit logs of
 * `.asd/workspace/releases/` only (never the repo, never the services): `release history` and
 * `release show`. A damaged file is named in the row it belongs to; it never stops the listing.
 */

/** `undone`: a `release-revert --undo` that finished (the release's code and data are back). */
export type RunResult = 'complete' | 'reverted' | 'undone' | 'failed' | 'interrupted' | 'running' | 'unfinished';

export interface PhaseRecord {
  name: string;
  /** When it ended (`done` or `failed`), ISO 8601 UTC. */
  ended: string;
  /** Since the previous phase ended (or the run started): the log records ends only. */
  duration_s: number;
  result: 'done' | 'failed' | 'interrupted';
  rc: number;
}

export interface BackupFile {
  /** Relative to the backup folder. */
  file: string;
  bytes: number | null;
  sha256: string | null;
}

export interface BackupRecord {
  service: string;
  /** The backup folder's timestamp, YYYYMMDD_HHMMSS. */
  at: string;
  /** As the log recorded it when it was taken; null when the log does not say. */
  bytes: number | null;
  /** `.asd/workspace/backups/SERVICE/AT/`. */
  dir: string;
  /** Whether that folder is still there (a prune may have removed it). */
  present: boolean;
  /** The last restore test of it (`release verify-backups`), as recorded beside it; null when never tested. */
  restore_test: RestoreTestRecord | null;
}

/** Beside a backup's files: the last restore test of it, written by `release verify-backups`. */
export const RESTORE_TEST_FILE = '.restore-test.json';

export interface RestoreTestRecord {
  /** When it ran, ISO 8601 UTC. */
  tested: string;
  outcome: 'passed' | 'failed' | 'untested';
  /** One line per entry: `backup[0] volume: passed: 1,204 files and folders match the archive`. */
  entries: string[];
}

/** The restore test recorded in a backup folder; null when none (or the record is unreadable). */
export function readRestoreTest(dir: string): RestoreTestRecord | null {
  try {
    const record = JSON.parse(readFileSync(join(dir, RESTORE_TEST_FILE), 'utf8')) as { tested?: unknown; outcome?: unknown; entries?: { index?: number; type?: string; outcome?: string; words?: string }[] };
    if (typeof record.tested !== 'string' || !['passed', 'failed', 'untested'].includes(record.outcome as string)) return null;
    const entries = Array.isArray(record.entries) ? record.entries.map((entry) => `backup[${entry.index}] ${entry.type}: ${entry.outcome}: ${entry.words}`) : [];
    return { tested: record.tested, outcome: record.outcome as RestoreTestRecord['outcome'], entries };
  } catch {
    return null;
  }
}

/** One run of a verb: a row of `release history`. */
export interface RunRecord {
  ticket: string;
  verb: string;
  /** `release-revert --undo`. */
  undo: boolean;
  /** `--from=PHASE` of this run, when it resumed. */
  from: string | null;
  started: string;
  ended: string | null;
  duration_s: number | null;
  result: RunResult;
  exit_code: number | null;
  phase_failed: string | null;
  /** Why it failed, as its stable reason (core/reasons.ts); null when it did not fail or the log does not say. */
  reason: string | null;
  base_sha: string | null;
  merge_sha: string | null;
  services: string[];
  backups: BackupRecord[];
  /** The pre-revert backups this run took (a release-revert backs up the data it replaces). */
  pre_revert_backups: BackupRecord[];
  phases: PhaseRecord[];
  playbooks: string[];
  /** Damage found in this ticket's files: one line each, naming the file. */
  problems: string[];
  /** On a ticket's newest row only (else null): whether `release-revert TICKET` can run as it is, and why. */
  revert_possible: boolean | null;
  revert_why: string | null;
}

export interface TicketRecord {
  ticket: string;
  state: ReleaseState | null;
  runs: RunRecord[];
  backups: BackupRecord[];
  /** The backups of the data the last revert replaced (PRE_REVERT_BACKUPS), which `--undo` puts back. */
  preRevertBackups: BackupRecord[];
  problems: string[];
  /** Whether `release-revert TICKET` can still run, and if not why. */
  revert: { possible: boolean; why: string };
}

/** `2026-05-18T15:30:12+00:00` (the log's form) as a Date. */
const logTime = (value: string) => new Date(value.replace('+00:00', 'Z'));
const seconds = (from: string, to: string) => Math.max(0, Math.round((logTime(to).getTime() - logTime(from).getTime()) / 1000));
const iso = (value: string) => logTime(value).toISOString();

interface LogEvent {
  time: string;
  phase: string;
  event: string;
  fields: Record<string, string>;
}

function readLog(path: string, problems: string[]): LogEvent[] {
  if (!existsSync(path)) return [];
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    problems.push(`${path}: unreadable (${(error as Error).message})`);
    return [];
  }
  const events: LogEvent[] = [];
  const lines = text.split('\n');
  if (lines.at(-1) !== '') problems.push(`${path}: the last line is cut off (a crash); the next run of this ticket repairs it`);
  lines.slice(0, -1).forEach((line, index) => {
    if (!LOG_LINE.test(line)) {
      problems.push(`${path}: line ${index + 1} is damaged and was skipped`);
      return;
    }
    const fields = Object.fromEntries([...line.matchAll(/ ([a-z_]+)=("(?:[^"\\]|\\.)*"|\S+)/g)].map((m) => [m[1]!, m[2]!.startsWith('"') ? JSON.parse(m[2]!) as string : m[2]!]));
    const { ticket: _ticket, phase, event, ...rest } = fields;
    events.push({ time: line.slice(0, 25), phase: phase!, event: event!, fields: rest });
  });
  return events;
}

/** The runs one log holds. A handoff's second process continues its parent's run, not a new one. */
function splitRuns(ticket: string, events: LogEvent[], lockedByLiveRun: boolean): RunRecord[] {
  const runs: RunRecord[] = [];
  let run: RunRecord | undefined;
  let phaseStart = '';
  let handedOff = false;
  for (const event of events) {
    if (event.phase === 'orchestrator' && event.event === 'start') {
      if (run && handedOff) {
        handedOff = false;
        continue;
      }
      run = {
        ticket, verb: event.fields.verb ?? 'release-run', undo: event.fields.undo === 'yes', from: event.fields.from ?? null, started: iso(event.time), ended: null, duration_s: null,
        result: 'unfinished', exit_code: null, phase_failed: null, reason: null, base_sha: null, merge_sha: null, services: [], backups: [], pre_revert_backups: [], phases: [], playbooks: [], problems: [],
        revert_possible: null, revert_why: null,
      };
      runs.push(run);
      phaseStart = event.time;
      continue;
    }
    if (!run) continue;
    if (event.phase === 'orchestrator') {
      if (event.event === 'handoff') handedOff = true;
      if (event.event === 'playbook' && event.fields.id && event.fields.id !== 'none') run.playbooks.push(event.fields.id);
      if (['done', 'failed', 'interrupted'].includes(event.event)) {
        run.ended = iso(event.time);
        run.duration_s = seconds(run.started, run.ended);
        run.exit_code = Number(event.fields.rc ?? (event.event === 'done' ? 0 : 1));
        run.phase_failed = event.fields.phase_failed ?? null;
        run.reason = event.fields.reason ?? null;
        run.result = event.event === 'done' ? (run.verb === 'release-revert' ? (run.undo ? 'undone' : 'reverted') : 'complete') : event.event === 'interrupted' ? 'interrupted' : 'failed';
      }
      continue;
    }
    if (['done', 'failed', 'interrupted'].includes(event.event) && event.fields.rc !== undefined) {
      run.phases.push({
        name: event.phase, ended: iso(event.time), duration_s: seconds(phaseStart, event.time),
        result: event.event as PhaseRecord['result'], rc: Number(event.fields.rc),
      });
      phaseStart = event.time;
    }
    if ((event.phase === 'prepare' || event.phase === 'restore') && event.event === 'backup' && event.fields.service && event.fields.at) {
      const bytes = Number(event.fields.bytes);
      (event.phase === 'prepare' ? run.backups : run.pre_revert_backups)
        .push({ service: event.fields.service, at: event.fields.at, bytes: Number.isFinite(bytes) ? bytes : null, dir: '', present: false, restore_test: null });
    }
  }
  const last = runs.at(-1);
  if (last && last.result === 'unfinished' && lockedByLiveRun) last.result = 'running';
  return runs;
}

/** The ticket a live run holds the lock for, if any (read from the lock file; never taken). */
function liveLockTicket(workspaceDir: string): string | undefined {
  return liveLockHolder(join(workspaceDir, 'release.lock'))?.ticket;
}

function backupFiles(dir: string): BackupFile[] {
  if (!existsSync(dir)) return [];
  const names = readdirSync(dir).filter((name) => !name.startsWith('.') && !name.endsWith('.sha256') && !name.endsWith('.size')).sort();
  return names.map((file) => {
    const path = join(dir, file);
    let sha256: string | null = null;
    let bytes: number | null = null;
    try { sha256 = /^([0-9a-f]{64})\s/.exec(readFileSync(`${path}.sha256`, 'utf8'))?.[1] ?? null; } catch { /* none recorded */ }
    try { bytes = statSync(path).size; } catch { /* gone meanwhile */ }
    return { file, bytes, sha256 };
  });
}

function readTicket(workspaceDir: string, ticket: string, liveTicket: string | undefined): TicketRecord {
  const releasesDir = join(workspaceDir, 'releases');
  const problems: string[] = [];
  const statePath = join(releasesDir, `${ticket}.env`);
  let state: ReleaseState | null = null;
  if (existsSync(statePath)) {
    try {
      state = parseState(readFileSync(statePath, 'utf8'), statePath);
    } catch (error) {
      problems.push((error as Error).message);
    }
  }
  const runs = splitRuns(ticket, readLog(join(releasesDir, `${ticket}.log`), problems), liveTicket === ticket);
  const backupOf = (service: string, at: string, bytes: number | null): BackupRecord => {
    const dir = join(workspaceDir, 'backups', service, at);
    return { service, at, bytes, dir, present: existsSync(dir), restore_test: readRestoreTest(dir) };
  };
  const logged = new Map(runs.flatMap((run) => [...run.backups, ...run.pre_revert_backups]).map((backup) => [`${backup.service}=${backup.at}`, backup.bytes]));
  const recorded = (stamps: Record<string, string> | undefined) =>
    Object.entries(stamps ?? {}).map(([service, at]) => backupOf(service, at, logged.get(`${service}=${at}`) ?? null));
  const backups = recorded(state?.backups);
  const preRevertBackups = recorded(state?.preRevertBackups);
  for (const run of runs) {
    run.backups = run.backups.map((backup) => backupOf(backup.service, backup.at, backup.bytes));
    run.pre_revert_backups = run.pre_revert_backups.map((backup) => backupOf(backup.service, backup.at, backup.bytes));
    run.problems = problems;
    // The state file is the ticket's latest attempt: it describes the release runs, and what a revert undoes.
    if (state) {
      run.base_sha = state.baseSha;
      run.merge_sha = state.mergeSha || null;
      run.services = state.services;
      if (run.verb === 'release-revert' || run.backups.length === 0) run.backups = backups;
    }
  }
  return { ticket, state, runs, backups, preRevertBackups, problems, revert: revertPossible(state, runs, backups, problems, statePath) };
}

function revertPossible(state: ReleaseState | null, runs: RunRecord[], backups: BackupRecord[], problems: string[], statePath: string): TicketRecord['revert'] {
  if (!state) return { possible: false, why: problems.length > 0 ? `the state file is damaged: ${problems[0]}` : `no state file (${statePath})` };
  if (!state.mergeSha) return { possible: false, why: 'the release never pulled (no MERGE_SHA): nothing to revert' };
  const last = [...runs].reverse().find((run) => run.result !== 'running');
  if (last?.verb === 'release-revert' && last.result === 'reverted') return { possible: false, why: `reverted already, at ${last.ended}` };
  if (last?.verb === 'release-revert' && last.exit_code === EXIT_CODES.REVERT_BLOCKED) {
    return { possible: false, why: `the last revert was blocked (exit 8 at ${last.ended}: HEAD moved past MERGE_SHA, or a conflict)` };
  }
  const missing = backups.filter((backup) => !backup.present);
  if (missing.length > 0) return { possible: false, why: `backup folder(s) gone: ${missing.map((b) => b.dir).join(', ')}` };
  return { possible: true, why: `state file and ${backups.length} backup folder(s) present; the revert itself checks with git that no later commit changed its files` };
}

const TICKET_FILE = /^([A-Za-z0-9][A-Za-z0-9_-]{0,63})\.(env|log)$/;

/** Every ticket with a state file or an audit log on this clone. */
export function listTickets(workspaceDir: string): string[] {
  const releasesDir = join(workspaceDir, 'releases');
  if (!existsSync(releasesDir)) return [];
  return [...new Set(readdirSync(releasesDir).map((name) => TICKET_FILE.exec(name)?.[1]).filter((name): name is string => Boolean(name)))].sort();
}

const lastRun = (record: TicketRecord, verb?: string) => [...record.runs].reverse().find((run) => run.result !== 'running' && (!verb || run.verb === verb));

/**
 * A release that later releases of this clone built on (they touched the same services, were not
 * reverted since) cannot be reverted as it is: their data would be lost under them. Read from the
 * files alone, by time; release-revert checks the same with git, files included, before it acts.
 */
function markLaterReleases(records: TicketRecord[]): void {
  for (const record of records) {
    if (!record.revert.possible || !record.state) continue;
    const released = lastRun(record, 'release-run');
    if (!released) continue;
    const later = records.filter((other) => {
      if (other === record || !other.state?.mergeSha) return false;
      const theirs = lastRun(other, 'release-run');
      const undone = lastRun(other)?.verb === 'release-revert' && lastRun(other)?.result === 'reverted';
      return !undone && theirs !== undefined && theirs.started > released.started
        && other.state.services.some((service) => record.state!.services.includes(service));
    }).sort((a, b) => lastRun(b, 'release-run')!.started.localeCompare(lastRun(a, 'release-run')!.started));
    if (later.length === 0) continue;
    const touched = [...new Set(later.flatMap((other) => other.state!.services.filter((service) => record.state!.services.includes(service))))];
    record.revert = {
      possible: false,
      why: `later release(s) ${later.map((other) => other.ticket).join(', ')} touched ${touched.join(', ')}: revert them first, newest first, or revert the code only with --code-only`,
    };
  }
}

function readAll(workspaceDir: string): TicketRecord[] {
  const live = liveLockTicket(workspaceDir);
  const records = listTickets(workspaceDir).map((ticket) => readTicket(workspaceDir, ticket, live));
  markLaterReleases(records);
  return records;
}

/** One ticket in full (`release show`); undefined when this clone has no file of it. */
export function readTicketHistory(workspaceDir: string, ticket: string): TicketRecord | undefined {
  if (!listTickets(workspaceDir).includes(ticket)) return undefined;
  return readAll(workspaceDir).find((record) => record.ticket === ticket);
}

/**
 * Every run of every ticket, newest first (`release history`). A ticket whose log holds no run
 * (only a state file, or a damaged log) still gets one row, so its damage is seen.
 */
export function readHistory(workspaceDir: string, options: { service?: string } = {}): RunRecord[] {
  const rows: RunRecord[] = [];
  for (const record of readAll(workspaceDir)) {
    const { ticket } = record;
    const newest = record.runs.at(-1);
    if (newest) Object.assign(newest, { revert_possible: record.revert.possible, revert_why: record.revert.why });
    if (record.runs.length > 0) {
      rows.push(...record.runs);
    } else {
      rows.push({
        ticket, verb: 'release-run', undo: false, pre_revert_backups: [], from: null, started: '', ended: null, duration_s: null, result: 'unfinished', exit_code: null,
        phase_failed: null, reason: null, base_sha: record.state?.baseSha ?? null, merge_sha: record.state?.mergeSha || null,
        services: record.state?.services ?? [], backups: record.backups, phases: [], playbooks: [],
        problems: record.problems.length > 0 ? record.problems : ['no run recorded in the audit log'],
        revert_possible: record.revert.possible, revert_why: record.revert.why,
      });
    }
  }
  // A row whose state file is damaged names no services: it is kept, so the damage is seen.
  const filtered = options.service ? rows.filter((row) => row.services.includes(options.service!) || (row.services.length === 0 && row.problems.length > 0)) : rows;
  // The log's times are whole seconds: runs that started in the same second are ordered by their ends.
  const order = new Map(filtered.map((row, index) => [row, index]));
  return filtered.sort((a, b) => b.started.localeCompare(a.started) || (b.ended ?? '~').localeCompare(a.ended ?? '~') || order.get(b)! - order.get(a)!);
}

export { backupFiles };
