import { readFileSync, existsSync } from 'node:fs';
import { writeFileAtomic } from './fs-private.js';
import { ReleaseError } from './errors.js';

/**
 * The state file `.asd/workspace/releases/TICKET.env`: the keys of DESIGN.md §2, in that order,
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
}

/** The optional key after STATE_KEYS. */
const APPLIED_KEY = 'APPLIED';
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
    BACKUPS: Object.entries(state.backups).map(([svc, stamp]) => `${svc}=${stamp}`).join(' '),
  };
  return STATE_KEYS.map((key) => {
    const value = values[key];
    if (!SAFE_VALUE.test(value)) throw new Error(`state value for ${key} has characters a state file cannot hold: ${value}`);
    return QUOTED_KEYS.has(key) ? `${key}="${value}"` : `${key}=${value}`;
  }).join('\n') + '\n' + (state.applied?.length ? `${APPLIED_KEY}="${serializeApplied(state.applied)}"\n` : '');
}

function serializeApplied(applied: readonly string[]): string {
  const bad = applied.find((entry) => !APPLIED_ENTRY.test(entry));
  if (bad !== undefined) throw new Error(`state value for ${APPLIED_KEY} has an entry that is not service:kind: ${bad}`);
  return applied.join(' ');
}

function damaged(path: string, why: string): ReleaseError {
  return new ReleaseError('BAD_INPUT', `state file ${path} is damaged: ${why}`, {
    hint: 'restore it from a copy, or move it aside and start the release again with --from=prepare',
  });
}

/** Strict: every key once, in order, each line whole; anything else is damage, never guessed at. */
export function parseState(text: string, path: string): ReleaseState {
  if (!text.endsWith('\n')) throw damaged(path, 'the last line is cut off');
  const lines = text.slice(0, -1).split('\n');
  let applied: string[] | undefined;
  if (lines.length === STATE_KEYS.length + 1) {
    const match = new RegExp(`^${APPLIED_KEY}="([^"]*)"$`).exec(lines.pop()!);
    applied = match?.[1]!.split(' ').filter(Boolean);
    if (!applied || applied.some((entry) => !APPLIED_ENTRY.test(entry))) throw damaged(path, `line ${STATE_KEYS.length + 1} should be ${APPLIED_KEY}="service:kind ..."`);
  }
  if (lines.length !== STATE_KEYS.length) throw damaged(path, `expected ${STATE_KEYS.length} lines, found ${lines.length}`);
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
  const backups: Record<string, string> = {};
  for (const entry of split(values.BACKUPS)) {
    const match = /^([^=]+)=(\d{8}_\d{6}(?:-\d+)?)$/.exec(entry);
    if (!match) throw damaged(path, `BACKUPS entry "${entry}" is not service=YYYYMMDD_HHMMSS`);
    backups[match[1]!] = match[2]!;
  }
  return {
    ticket: values.TICKET,
    branch: values.BRANCH,
    baseSha: values.BASE_SHA,
    mergeSha: values.MERGE_SHA,
    services: split(values.SERVICES),
    skippedMetadata: split(values.SKIPPED_METADATA),
    backups,
    ...(applied ? { applied } : {}),
  };
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
      });
    }
    return parseState(text, this.path);
  }

  /** `beforeRename` lets tests stop the process between the temp write and the rename. */
  write(state: ReleaseState, beforeRename?: () => void): void {
    writeFileAtomic(this.path, serializeState(state), beforeRename);
  }
}
