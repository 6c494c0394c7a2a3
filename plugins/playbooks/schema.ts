import { z } from 'zod';
import { REASON_NAMES, type Reason } from '../../core/index.js';

/** `recovery/playbooks/release-*.yaml`: what failure it is for, why it happens, what to type. */
export const playbookSchema = z.strictObject({
  id: z.string().regex(/^release-[a-z0-9-]+$/, 'expected release-<words>, the file name without .yaml'),
  title: z.string().min(1),
  /** All given conditions must hold; an absent one matches anything. */
  matches: z.strictObject({
    verb: z.enum(['release-run', 'release-revert']).optional(),
    phase: z.string().min(1).optional(),
    exit: z.union([z.number().int(), z.array(z.number().int()).min(1)]).optional(),
    /** The failure's stable reason (core/reasons.ts), or one of several: what a playbook matches on. */
    reason: z.union([z.enum(REASON_NAMES as [Reason, ...Reason[]]), z.array(z.enum(REASON_NAMES as [Reason, ...Reason[]])).min(1)]).optional(),
    /** A regular expression searched in the failure's message, detail lines and hint: for a platform playbook that needs more than the reason. */
    output: z.string().min(1).refine((source) => {
      try { new RegExp(source); return true; } catch { return false; }
    }, 'not a valid regular expression').optional(),
  }),
  cause: z.string().min(1),
  steps: z.array(z.string().min(1)).min(1),
  /** The exact next command; {ticket}, {phase}, {service}, {base_sha} and {merge_sha} are filled in. */
  next: z.string().min(1),
  /** Where the maintainers fixed or tracked it; kept in the file, never printed to the operator. */
  fixed_in: z.string().min(1).optional(),
});

export type Playbook = z.infer<typeof playbookSchema>;

export interface Failure {
  verb: string;
  phase: string;
  exitCode: number;
  reason: Reason;
  output: string;
}

export function playbookMatches(playbook: Playbook, failure: Failure): boolean {
  const { verb, phase, exit, reason, output } = playbook.matches;
  if (verb !== undefined && verb !== failure.verb) return false;
  if (phase !== undefined && phase !== failure.phase) return false;
  if (exit !== undefined && !(Array.isArray(exit) ? exit : [exit]).includes(failure.exitCode)) return false;
  if (reason !== undefined && !(Array.isArray(reason) ? reason : [reason]).includes(failure.reason)) return false;
  if (output !== undefined && !new RegExp(output, 'm').test(failure.output)) return false;
  return true;
}

export interface FillValues {
  verb?: string;
  ticket: string;
  phase: string;
  service?: string;
  base_sha?: string;
  merge_sha?: string;
}

/**
 * Fills {ticket}, {phase}, {service}, {base_sha} and {merge_sha}; a value that is not known for
 * this failure becomes a word that says what to put there (e.g. `SERVICE`), never an empty hole.
 */
export function fillIn(template: string, values: FillValues): string {
  return template.replace(/\{(verb|ticket|phase|service|base_sha|merge_sha)\}/g, (_match, key: keyof FillValues) => values[key] || key.toUpperCase());
}
