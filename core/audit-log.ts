import { existsSync, ftruncateSync, fsyncSync, openSync, closeSync, readFileSync } from 'node:fs';
import { appendPrivateLine, writeFileAtomic } from './fs-private.js';
import { ReleaseError } from './errors.js';
import { redact } from './secrets.js';

/** A field value in the log is one token: no spaces, so `key=value` stays greppable. */
const TOKEN = /^[A-Za-z0-9._:\/@,+=-]+$/;

export type LogFields = Record<string, string | number | undefined>;

/** UTC with an explicit +00:00 offset, whole seconds, as the runbook's log shows. */
export function utcTimestamp(date = new Date()): string {
  return `${date.toISOString().slice(0, 19)}+00:00`;
}

/** One whole event line, as formatLogLine writes it. */
export const LOG_LINE = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00 ticket=\S+ phase=\S+ event=\S+( [a-z_]+=("(?:[^"\\]|\\.)*"|\S+))*$/;

export function formatLogLine(ticket: string, phase: string, event: string, fields: LogFields = {}, date = new Date()): string {
  const parts = [utcTimestamp(date), `ticket=${ticket}`, `phase=${phase}`, `event=${event}`];
  for (const [key, raw] of Object.entries(fields)) {
    if (raw === undefined) continue;
    const value = redact(String(raw));
    parts.push(`${key}=${TOKEN.test(value) ? value : JSON.stringify(value)}`);
  }
  return parts.join(' ');
}

/** The audit log `.asd/workspace/releases/TICKET.log`: append-only, one event a line, flushed per event. */
export class AuditLog {
  /**
   * `onEvent` sees every event, in a dry run too (when nothing is written): the `--json` stream
   * is fed from here, so it holds the same events as the log.
   */
  constructor(
    readonly path: string,
    readonly ticket: string,
    private readonly enabled = true,
    private readonly onEvent?: (phase: string, event: string, fields: Record<string, unknown>) => void,
  ) {}

  /**
   * Called under the lock before this run writes: a last line cut off by a crash is moved to
   * `TICKET.log.cut-<time>` and the log truncated to its last whole line (returns where it went).
   * A damaged line anywhere else is not guessed at: the run stops with exit 2.
   */
  repair(): string | undefined {
    if (!this.enabled || !existsSync(this.path)) return undefined;
    const text = readFileSync(this.path, 'utf8');
    const end = text.lastIndexOf('\n') + 1;
    let movedTo: string | undefined;
    if (end < text.length) {
      movedTo = `${this.path}.cut-${utcTimestamp().replace(/[-:+]/g, '').slice(0, 15)}`;
      writeFileAtomic(movedTo, text.slice(end));
      const fd = openSync(this.path, 'r+');
      try {
        ftruncateSync(fd, Buffer.byteLength(text.slice(0, end)));
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
    }
    const lines = text.slice(0, end).split('\n').slice(0, -1);
    const bad = lines.findIndex((line) => !LOG_LINE.test(line));
    if (bad >= 0) {
      throw new ReleaseError('BAD_INPUT', `audit log ${this.path} is damaged at line ${bad + 1} of ${lines.length}; it is not repaired automatically`, {
        hint: `read it, then move it aside (mv ${this.path} ${this.path}.damaged); the next run starts a new log`,
      });
    }
    return movedTo;
  }

  /** The events this log holds, as `key=value` maps, oldest first (for resuming interrupted work). */
  events(): Record<string, string>[] {
    if (!existsSync(this.path)) return [];
    return readFileSync(this.path, 'utf8').split('\n').filter(Boolean).map((line) =>
      Object.fromEntries([...line.matchAll(/ ([a-z_]+)=("(?:[^"\\]|\\.)*"|\S+)/g)].map((m) => [m[1]!, m[2]!.startsWith('"') ? JSON.parse(m[2]!) as string : m[2]!])));
  }

  /** `more`: fields for the `--json` event only (lists, prose), kept out of the one-token log line. */
  event(phase: string, event: string, fields: LogFields = {}, more: Record<string, unknown> = {}): void {
    if (this.enabled) appendPrivateLine(this.path, formatLogLine(this.ticket, phase, event, fields));
    this.onEvent?.(phase, event, { ...fields, ...more });
  }
}
