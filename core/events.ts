import { redact } from './secrets.js';
// Types only: the schemas (and zod) load where events are checked, not with every command.
import type { ReleaseEvent } from './event-schema.js';

export type { ReleaseEvent, OutcomeFields } from './event-schema.js';

/**
 * The machine-readable events of a run (`--json`): one JSON object per line on stdout. The same
 * events the audit log records, plus what a program driving a release needs and a log line does
 * not hold (actions, sizes, probe answers, the failure and what to type next). Documented in
 * docs/events.md; the notifiers post these objects as they are. Bump EVENT_SCHEMA_VERSION on any
 * change a reader could trip over (a renamed or retyped field); adding an event or a field is not one.
 */
export const EVENT_SCHEMA_VERSION = 1;

/** The verbs that emit events. */
export const EVENT_VERBS = ['release-run', 'release-revert', 'release'] as const;
export type EventVerb = (typeof EVENT_VERBS)[number];

/** A field's value: anything JSON holds. Strings are redacted before they are emitted. */
export type EventFieldValue = string | number | boolean | null | EventFieldValue[] | { [key: string]: EventFieldValue };
export type EventFields = Record<string, EventFieldValue>;

/** Drops undefined values and redacts every string, however deep. */
function cleanFields(fields: Record<string, unknown>): EventFields {
  const clean = (value: unknown): EventFieldValue | undefined => {
    if (value === undefined) return undefined;
    if (value === null || typeof value === 'number' || typeof value === 'boolean') return value as EventFieldValue;
    if (typeof value === 'string') return redact(value);
    if (Array.isArray(value)) return value.map((item) => clean(item) ?? null);
    if (typeof value === 'object') {
      const out: EventFields = {};
      for (const [key, item] of Object.entries(value)) {
        const cleaned = clean(item);
        if (cleaned !== undefined) out[key] = cleaned;
      }
      return out;
    }
    return redact(String(value));
  };
  return clean(fields) as EventFields;
}

export type EventListener = (event: ReleaseEvent) => void;

/**
 * Where a run's events go: written as JSON lines when `--json` asked for them, and handed to any
 * listener (a notifier). Emitting never throws: a failing listener must not fail a release.
 */
export class EventStream {
  ticket: string | null = null;
  dryRun = false;
  private readonly listeners: EventListener[] = [];

  constructor(readonly verb: EventVerb, private readonly write?: (line: string) => void) {}

  /** Whether events are written out (`--json`). */
  get enabled(): boolean {
    return this.write !== undefined;
  }

  on(listener: EventListener): void {
    this.listeners.push(listener);
  }

  /** Builds the event (without emitting it), e.g. for a notifier that posts one of its own. */
  build(phase: string, event: string, fields: Record<string, unknown> = {}, time = new Date()): ReleaseEvent {
    return {
      schema: EVENT_SCHEMA_VERSION,
      time: time.toISOString(),
      ticket: this.ticket,
      verb: this.verb,
      phase,
      event,
      dry_run: this.dryRun,
      fields: cleanFields(fields),
    };
  }

  emit(phase: string, event: string, fields: Record<string, unknown> = {}): ReleaseEvent {
    const built = this.build(phase, event, fields);
    if (this.write) this.write(`${JSON.stringify(built)}\n`);
    for (const listener of this.listeners) {
      try { listener(built); } catch { /* a listener's failure is its own */ }
    }
    return built;
  }
}
