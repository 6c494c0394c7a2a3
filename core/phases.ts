/**
 * The phase tables. A verb is an ordered list of phases; each phase's body is whatever the
 * plugins tap on `hooks.phase.for(name)`. The runner halts on the first failure.
 */
export type Verb = 'release-run' | 'release-revert';

export interface PhaseDefinition {
  name: string;
  /** One line for --help and the dry-run preview. */
  summary: string;
}

export const RUN_PHASES: readonly PhaseDefinition[] = [
  { name: 'prepare', summary: 'fetch, record BASE_SHA, pull --ff-only, record MERGE_SHA, back up changed services' },
  { name: 'migrate', summary: 'classify the diff, regenerate migrate.sh, apply it' },
  { name: 'ticket', summary: "run the ticket's own releases/TICKET-*.sh --yes" },
  { name: 'verify', summary: 'HEAD == MERGE_SHA, no drift, health probes pass' },
];

export const REVERT_PHASES: readonly PhaseDefinition[] = [
  { name: 'restore', summary: 'check every backup, then restore each one' },
  { name: 'git-revert', summary: 'revert the released commit(s) in one local commit' },
  { name: 'redeploy', summary: 'bring every released service back to the reverted tree' },
  { name: 'revert-verify', summary: 'no drift and health probes pass on the reverted tree' },
];

export const PHASES_OF: Record<Verb, readonly PhaseDefinition[]> = {
  'release-run': RUN_PHASES,
  'release-revert': REVERT_PHASES,
};

/** The phases to run for `--from=FROM`; throws on an unknown name. */
export function phasesFrom(verb: Verb, from: string | undefined): readonly PhaseDefinition[] {
  const phases = PHASES_OF[verb];
  if (from === undefined) return phases;
  const index = phases.findIndex((phase) => phase.name === from);
  if (index < 0) throw new RangeError(from);
  return phases.slice(index);
}
