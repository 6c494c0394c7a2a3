import { appendPrivateLine } from './fs-private.js';
import { redact } from './secrets.js';

/** A field value in the log is one token: no spaces, so `key=value` stays greppable. */
const TOKEN = /^[A-Za-z0-9._:\/@,+=-]+$/;

export type LogFields = Record<string, string | number | undefined>;

/** UTC with an explicit +00:00 offset, whole seconds, as the runbook's log shows. */
export function utcTimestamp(date = new Date()): string {
  return `${date.toISOString().slice(0, 19)}+00:00`;
}

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
  constructor(readonly path: string, readonly ticket: string, private readonly enabled = true) {}

  event(phase: string, event: string, fields: LogFields = {}): void {
    if (!this.enabled) return;
    appendPrivateLine(this.path, formatLogLine(this.ticket, phase, event, fields));
  }
}
