import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { invalidInput, type Plugin, type ReleaseError, type ReleaseState, type RunContext } from '../../api/index.js';
import { fillIn, playbookMatches, playbookSchema, type FillValues, type Playbook } from './schema.js';

export const PLUGIN_NAME = 'recovery-playbooks';
export const PLAYBOOK_DIR = join('recovery', 'playbooks');
/** The playbooks this orchestrator ships, beside those of the platform repo. */
export const SHIPPED_PLAYBOOKS = fileURLToPath(new URL(`../../../${PLAYBOOK_DIR}`, import.meta.url));

interface Loaded {
  playbooks: Playbook[];
  problems: string[];
}

/** Every valid `release-*.yaml` of the folders; an invalid one is reported, not fatal: a failure is being handled. */
export function loadPlaybooks(dirs: string[]): Loaded {
  const byId = new Map<string, Playbook>();
  const problems: string[] = [];
  for (const dir of dirs) {
    if (!existsSync(dir)) continue;
    for (const name of readdirSync(dir).filter((n) => /^release-.*\.ya?ml$/.test(n)).sort()) {
      const file = join(dir, name);
      try {
        const parsed = playbookSchema.safeParse(parseYaml(readFileSync(file, 'utf8')));
        if (!parsed.success) {
          problems.push(invalidInput(file, parsed.error, '').message);
          continue;
        }
        byId.set(parsed.data.id, parsed.data); // the platform repo's own version of an id wins
      } catch (error) {
        problems.push(`${file}: not valid YAML: ${(error as Error).message.split('\n')[0]}`);
      }
    }
  }
  return { playbooks: [...byId.values()], problems };
}

/** What the playbooks' placeholders stand for in this failure: the error's service, the state's SHAs. */
function fillValues(context: RunContext, error: ReleaseError): FillValues {
  let state: ReleaseState | undefined = context.state;
  try {
    if (!state && context.stateFile.exists()) state = context.stateFile.read();
  } catch {
    state = undefined; // a damaged state file: the error is about it already
  }
  const services = state?.services ?? [];
  return {
    verb: context.verb,
    ticket: context.ticket,
    phase: context.phase,
    service: error.service ?? (services.length === 1 ? services[0] : undefined),
    base_sha: state?.baseSha || undefined,
    merge_sha: state?.mergeSha || undefined,
  };
}

function show(context: RunContext, error: ReleaseError): void {
  const { playbooks, problems } = loadPlaybooks([SHIPPED_PLAYBOOKS, join(context.repoDir, PLAYBOOK_DIR)]);
  for (const problem of problems) context.out.warn(`playbook skipped: ${problem}`);
  const failure = {
    verb: context.verb,
    phase: context.phase,
    exitCode: error.exitCode,
    reason: error.reason,
    output: [error.message, ...error.lines, error.hint ?? ''].join('\n'),
  };
  const matching = playbooks.filter((playbook) => playbookMatches(playbook, failure));
  const values = fillValues(context, error);
  if (matching.length === 0) {
    context.out.advice(`No recovery playbook matches this failure (phase ${failure.phase}, exit ${failure.exitCode}, reason ${failure.reason}).`);
    context.out.advice(`Once it is understood, add one as ${relative(context.repoDir, join(context.repoDir, PLAYBOOK_DIR))}/release-<name>.yaml (see docs/operations.md).`);
    if (error.code !== 'LOCKED') context.log.event('orchestrator', 'playbook', { id: 'none' });
    return;
  }
  if (context.dryRun) {
    // A playbook's steps are for a release that changed something; a dry run changed nothing.
    for (const playbook of matching) {
      context.out.advice(`A real run would show the recovery playbook ${playbook.id}: ${playbook.title}`);
      context.log.event('orchestrator', 'playbook', { id: playbook.id }, { title: playbook.title });
    }
    return;
  }
  for (const playbook of matching) {
    // fixed_in is the maintainers' reference: it means nothing to the operator, so it is not shown.
    context.out.advice(`Recovery playbook ${playbook.id}: ${playbook.title}`);
    context.out.advice(`  cause: ${fillIn(playbook.cause.trim().replace(/\s*\n\s*/g, ' '), values)}`);
    playbook.steps.forEach((step, index) => context.out.advice(`  ${index + 1}. ${fillIn(step, values)}`));
    context.out.advice(`  next: ${fillIn(playbook.next, values)}`);
    const more = { title: playbook.title, next: fillIn(playbook.next, values) };
    // The holder owns the log; the --json stream is this run's own.
    if (error.code !== 'LOCKED') context.log.event('orchestrator', 'playbook', { id: playbook.id }, more);
    else context.out.events.emit('orchestrator', 'playbook', { id: playbook.id, ...more });
  }
}

/** On any failure of a verb, prints every matching recovery playbook and logs which matched. */
export function playbooksPlugin(): Plugin {
  return {
    name: PLUGIN_NAME,
    apply({ hooks }) {
      hooks.failed.tapPromise(PLUGIN_NAME, async (context, error) => {
        // An --atomic release ends reverted (nothing to recover), or its revert showed the playbook of its own failure.
        if (context.outcome?.atomic !== undefined) return;
        await show(context, error);
      });
    },
  };
}
