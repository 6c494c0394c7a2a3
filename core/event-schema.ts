/**
 * The schema of the `--json` events (core/events.ts emits them; docs/events.md documents them):
 * for readers that check what they get (the tests, a program driving a release). Kept apart from
 * the stream so that a command that only emits events does not load zod.
 */
import { z } from 'zod';
import { EVENT_SCHEMA_VERSION, EVENT_VERBS, type EventFieldValue } from './events.js';

const fieldValue: z.ZodType<EventFieldValue> = z.json() as z.ZodType<EventFieldValue>;

/** Every event has these keys, and no others. */
export const ReleaseEventBaseSchema = z.strictObject({
  schema: z.literal(EVENT_SCHEMA_VERSION),
  /** When it happened: ISO 8601 in UTC with milliseconds (`2026-05-18T15:30:12.345Z`). */
  time: z.iso.datetime(),
  /** null only for verbs that concern no ticket (`release history`) or input refused before a ticket was read. */
  ticket: z.string().nullable(),
  verb: z.enum(EVENT_VERBS),
  /** A phase name, `orchestrator` for the run as a whole, or a sub-step (`apply`, `probe`, `restore`). */
  phase: z.string().regex(/^[a-z][a-z0-9-]*$/),
  /** What happened, kebab-case: `start`, `done`, `failed`, `backup`, `action`, `outcome`, ... */
  event: z.string().regex(/^[a-z][a-z0-9-]*$/),
  /** True in a `--dry-run`: nothing was changed, and the audit log records none of these. */
  dry_run: z.boolean(),
  fields: z.record(z.string().regex(/^[a-z][a-z0-9_]*$/), fieldValue),
});

const exitCode = z.number().int().min(0).max(255);
const sha = z.string().regex(/^([0-9a-f]{40})?$/);

/**
 * The fields some events must carry, keyed by `event` (or `phase/event` where the phase decides).
 * Other fields may be present too: readers ignore what they do not know.
 */
export const KNOWN_EVENT_FIELDS = {
  /** A phase finished (rc 0), or the whole run did (phase `orchestrator`). */
  done: z.looseObject({ rc: z.literal(0) }),
  /** A phase failed; on phase `orchestrator` it names the phase in `phase_failed`. */
  failed: z.looseObject({ rc: exitCode }),
  interrupted: z.looseObject({ rc: exitCode }),
  'orchestrator/failed': z.looseObject({ rc: exitCode, phase_failed: z.string() }),
  'orchestrator/interrupted': z.looseObject({ rc: exitCode, phase_failed: z.string() }),
  /** The error as the operator saw it: `code` is the ReleaseError code, `exit_code` the process's. */
  error: z.looseObject({
    code: z.string(), exit_code: exitCode, message: z.string(),
    hint: z.string().optional(), lines: z.array(z.string()).optional(),
    plugin: z.string().optional(), hook: z.string().optional(), service: z.string().optional(),
  }),
  /** What to type next, as the operator pastes it; `advice` is the failure block's prose, line by line. */
  next: z.looseObject({ commands: z.array(z.string()), advice: z.array(z.string()) }),
  /** A recovery playbook that matched the failure (`none` when none did). */
  playbook: z.looseObject({ id: z.string() }),
  /** An action the run carries out (or, in a dry run, would), or the drift check found. */
  action: z.looseObject({ service: z.string(), kind: z.string(), reason: z.string() }),
  /** A backup taken: its folder's timestamp and size. */
  'prepare/backup': z.looseObject({ service: z.string(), at: z.string(), bytes: z.number().int().nonnegative() }),
  /** A dry run's estimate of a backup (`bytes` null when the strategy cannot tell). */
  'backup-estimate': z.looseObject({ service: z.string(), type: z.string(), bytes: z.number().int().nonnegative().nullable() }),
  /** A health probe's answer. */
  healthy: z.looseObject({ service: z.string() }),
  unhealthy: z.looseObject({ service: z.string() }),
  /** The last event of every run of release-run and release-revert: everything a CI job or a notifier needs. */
  outcome: z.looseObject({
    result: z.enum(['complete', 'reverted', 'undone', 'failed', 'interrupted', 'dry-run', 'dry-run-failed', 'refused']),
    exit_code: exitCode,
    started: z.iso.datetime(),
    duration_s: z.number().nonnegative(),
    services: z.array(z.string()),
    base_sha: sha,
    merge_sha: sha,
    phase_failed: z.string().nullable(),
    message: z.string().nullable(),
    next: z.array(z.string()),
    atomic: z.enum(['reverted', 'revert-failed']).optional(),
    revert_phase_failed: z.string().nullable().optional(),
  }),
} as const satisfies Record<string, z.ZodType>;

/** One event, as written on a line of `--json` output and posted by the notifiers. */
export const ReleaseEventSchema = ReleaseEventBaseSchema.superRefine((value, issue) => {
  const known = (KNOWN_EVENT_FIELDS as Record<string, z.ZodType>)[`${value.phase}/${value.event}`]
    ?? (KNOWN_EVENT_FIELDS as Record<string, z.ZodType>)[value.event];
  if (!known) return;
  const checked = known.safeParse(value.fields);
  if (checked.success) return;
  for (const problem of checked.error.issues) {
    issue.addIssue({ code: 'custom', path: ['fields', ...problem.path.map(String)], message: `${value.phase}/${value.event}: ${problem.message}` });
  }
});

export type ReleaseEvent = z.infer<typeof ReleaseEventBaseSchema>;
/** The fields of the final `outcome` event. */
export type OutcomeFields = z.infer<(typeof KNOWN_EVENT_FIELDS)['outcome']>;

/** Parses one line of `--json` output; throws a ZodError naming what is wrong. */
export function parseEventLine(line: string): ReleaseEvent {
  return ReleaseEventSchema.parse(JSON.parse(line));
}
