import { readFileSync, existsSync } from 'node:fs';
import { writeFileAtomic } from './fs-private.js';
import { ReleaseError } from './errors.js';

/**
 * The state file `.asd/workspace/releases/TICKET.env`: the keys docs/files-and-exit-codes.md lists, in that order,
 * KEY=VALUE lines a shell can source. Written whole every time (atomically), so a reader that
 * finds a key missing or a line cut off knows the file is damaged, not half-written.
 */
export const STATE_KEYS = ['TICKET', 'BRANCH', 'BASE_SHA', 'MERGE_SHA', 'SERVICES', 'SKIPPED_METADATA', 'BACKUPS'] as const;
type StateKey = (typeof STATE_KEYS)[number];

export interface ReleaseState {
  ticket: string;
  branch: string;
  baseSha: string;
  /** Empty until the pull has happened. */
  mergeSha: string;
  services: string[];
  skippedMetadata: string[];
  /** service name -> backup timestamp (YYYYMMDD_HHMMSS). */
  backups: Record<string, string>;
  /**
   * The actions of this release carried out so far, as `service:kind` (the optional last line
   * APPLIED, present only while migrate is part-way): a resumed migrate does not repeat them.
   */
  applied?: string[];
  /**
   * Set by release-revert before it restores anything (optional lines PRE_REVERT_HEAD and
   * PRE_REVERT_BACKUPS): where git stood and the backups of the data the restore replaced, which
   * `release-revert TICKET --undo` puts back.
   */
  preRevertHead?: string;
  preRevertBackups?: Record<string, string>;
}

/** The optional keys after STATE_KEYS, each at most once and in this order. */
const APPLIED_KEY = 'APPLIED';
const PRE_REVERT_HEAD_KEY = 'PRE_REVERT_HEAD';
const PRE_REVERT_BACKUPS_KEY = 'PRE_REVERT_BACKUPS';
const OPTIONAL_KEYS = [APPLIED_KEY, PRE_REVERT_HEAD_KEY, PRE_REVERT_BACKUPS_KEY] as const;
const APPLIED_ENTRY = /^[a-z0-9][a-z0-9_-]*:[a-z][a-z0-9-]*$/;

const QUOTED_KEYS: ReadonlySet<StateKey> = new Set(['SERVICES', 'SKIPPED_METADATA', 'BACKUPS']);
const SAFE_VALUE = /^[A-Za-z0-9._\/:@=, -]*$/;
const SHA = /^[0-9a-f]{40}$/;
/**
 * A backup folder's name: its UTC time, `YYYYMMDD_HHMMSS`, and `-N` when another backup of the
 * same service already took that second's folder.
 */
export const BACKUP_STAMP = /^\d{8}_\d{6}(?:-\d+)?$/;

export function serializeState(state: ReleaseState): string {
  const values: Record<StateKey, string> = {
    TICKET: state.ticket,
    BRANCH: state.branch,
    BASE_SHA: state.baseSha,
    MERGE_SHA: state.mergeSha,
    SERVICES: state.services.join(' '),
    SKIPPED_METADATA: state.skippedMetadata.join(' '),
    BACKUPS: serializeBackups(state.backups),
  };
  return STATE_KEYS.map((key) => {
    const value = values[key];
    if (!SAFE_VALUE.test(value)) throw new Error(`state value for ${key} has characters a state file cannot hold: ${value}`);
    return QUOTED_KEYS.has(key) ? `${key}="${value}"` : `${key}=${value}`;
  }).join('\n') + '\n'
    + (state.applied?.length ? `${APPLIED_KEY}="${serializeApplied(state.applied)}"\n` : '')
    + (state.preRevertHead ? `${PRE_REVERT_HEAD_KEY}=${requireSha(state.preRevertHead)}\n` : '')
    + (state.preRevertBackups && Object.keys(state.preRevertBackups).length ? `${PRE_REVERT_BACKUPS_KEY}="${serializeBackups(state.preRevertBackups)}"\n` : '');
}

const serializeBackups = (backups: Record<string, string>) => Object.entries(backups).map(([svc, stamp]) => `${svc}=${stamp}`).join(' ');

function requireSha(value: string): string {
  if (!SHA.test(value)) throw new Error(`state value for ${PRE_REVERT_HEAD_KEY} is not a commit id: ${value}`);
  return value;
}

function serializeApplied(applied: readonly string[]): string {
  const bad = applied.find((entry) => !APPLIED_ENTRY.test(entry));
  if (bad !== undefined) throw new Error(`state value for ${APPLIED_KEY} has an entry that is not service:kind: ${bad}`);
  return applied.join(' ');
}

function damaged(path: string, why: string): ReleaseError {
  return new ReleaseError('BAD_INPUT', `state file ${path} is damaged: ${why}`, {
    hint: 'restore it from a copy, or move it aside and start the release again with --from=prepare',
    reason: 'STATE_FILE',
  });
}

/** Strict: every key once, in order, each line whole; anything else is damage, never guessed at. */
export function parseState(text: string, path: string): ReleaseState {
  if (!text.endsWith('\n')) throw damaged(path, 'the last line is cut off');
  const lines = text.slice(0, -1).split('\n');
  if (lines.length < STATE_KEYS.length) throw damaged(path, `expected ${STATE_KEYS.length} lines, found ${lines.length}`);
  const optional = parseOptionalLines(lines.splice(STATE_KEYS.length), path);
  const values = {} as Record<StateKey, string>;
  lines.forEach((line, index) => {
    const key = STATE_KEYS[index]!;
    const match = QUOTED_KEYS.has(key)
      ? new RegExp(`^${key}="([^"\\\\$\`]*)"$`).exec(line)
      : new RegExp(`^${key}=([^"'\\s\\\\$\`]*)$`).exec(line);
    if (!match || !SAFE_VALUE.test(match[1]!)) throw damaged(path, `line ${index + 1} should be ${key}=..., found "${line.slice(0, 60)}"`);
    values[key] = match[1]!;
  });
  if (!SHA.test(values.BASE_SHA)) throw damaged(path, 'BASE_SHA is not a commit id');
  if (values.MERGE_SHA !== '' && !SHA.test(values.MERGE_SHA)) throw damaged(path, 'MERGE_SHA is not a commit id');
  const split = (value: string) => value.split(' ').filter(Boolean);
  return {
    ticket: values.TICKET,
    branch: values.BRANCH,
    baseSha: values.BASE_SHA,
    mergeSha: values.MERGE_SHA,
    services: split(values.SERVICES),
    skippedMetadata: split(values.SKIPPED_METADATA),
    backups: parseBackups(values.BACKUPS, 'BACKUPS', path),
    ...optional,
  };
}

function parseBackups(value: string, key: string, path: string): Record<string, string> {
  const backups: Record<string, string> = {};
  for (const entry of value.split(' ').filter(Boolean)) {
    const match = /^([^=]+)=(\d{8}_\d{6}(?:-\d+)?)$/.exec(entry);
    if (!match) throw damaged(path, `${key} entry "${entry}" is not service=YYYYMMDD_HHMMSS`);
    backups[match[1]!] = match[2]!;
  }
  return backups;
}

/** The optional lines after the fixed keys: each known key at most once, in OPTIONAL_KEYS order. */
function parseOptionalLines(lines: string[], path: string): Pick<ReleaseState, 'applied' | 'preRevertHead' | 'preRevertBackups'> {
  const parsed: Pick<ReleaseState, 'applied' | 'preRevertHead' | 'preRevertBackups'> = {};
  let next = 0;
  lines.forEach((line, offset) => {
    const number = STATE_KEYS.length + offset + 1;
    const key = OPTIONAL_KEYS.findIndex((candidate, index) => index >= next && line.startsWith(`${candidate}=`));
    if (key < 0) throw damaged(path, `line ${number} should be one of ${OPTIONAL_KEYS.slice(next).join(', ') || 'nothing (the file should end here)'}, found "${line.slice(0, 60)}"`);
    next = key + 1;
    const name = OPTIONAL_KEYS[key]!;
    const quoted = new RegExp(`^${name}="([^"\\\\$\`]*)"$`).exec(line)?.[1];
    if (name === APPLIED_KEY) {
      const applied = quoted?.split(' ').filter(Boolean);
      if (!applied || applied.some((entry) => !APPLIED_ENTRY.test(entry))) throw damaged(path, `line ${number} should be ${APPLIED_KEY}="service:kind ..."`);
      parsed.applied = applied;
    } else if (name === PRE_REVERT_HEAD_KEY) {
      const sha = line.slice(name.length + 1);
      if (!SHA.test(sha)) throw damaged(path, `${PRE_REVERT_HEAD_KEY} is not a commit id`);
      parsed.preRevertHead = sha;
    } else {
      if (quoted === undefined) throw damaged(path, `line ${number} should be ${PRE_REVERT_BACKUPS_KEY}="service=YYYYMMDD_HHMMSS ..."`);
      parsed.preRevertBackups = parseBackups(quoted, PRE_REVERT_BACKUPS_KEY, path);
    }
  });
  return parsed;
}

export class StateFile {
  constructor(readonly path: string) {}

  exists(): boolean {
    return existsSync(this.path);
  }

  read(): ReleaseState {
    let text: string;
    try {
      text = readFileSync(this.path, 'utf8');
    } catch {
      throw new ReleaseError('BAD_INPUT', `state file ${this.path} is missing`, {
        hint: 'it is written by prepare; run the release from the start (--from=prepare)',
        reason: 'STATE_FILE',
      });
    }
    return parseState(text, this.path);
  }

  /** `beforeRename` lets tests stop the process between the temp write and the rename. */
  write(state: ReleaseState, beforeRename?: () => void): void {
    writeFileAtomic(this.path, serializeState(state), { beforeRename });
  }
}
