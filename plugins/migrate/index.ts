import { join } from 'node:path';
import { ReleaseError, STEP_BIN, codeOfExit, writeFileAtomic, type Action, type Classification, type ChangedFile, type Plugin, type RunContext } from '../../core/index.js';
import { diffFiles } from '../git/git.js';
import { renderMigrateScript } from './script.js';

export const PLUGIN_NAME = 'migrate';

export interface ClassifiedFile {
  file: ChangedFile;
  classification: Classification;
}

/** Classifies every path; all unclassified paths are reported at once (exit 5). */
export function classifyAll(context: RunContext, files: ChangedFile[]): ClassifiedFile[] {
  const classified: ClassifiedFile[] = [];
  const unclassified: string[] = [];
  for (const file of files) {
    const classification = context.hooks.classify.call(file, context);
    if (classification) classified.push({ file, classification });
    else unclassified.push(file.path);
  }
  if (unclassified.length > 0) {
    const rules = context.hooks.classify.taps.map((tap) => tap.name).join(', ') || 'none';
    throw new ReleaseError('DRIFT', `${unclassified.length} changed file(s) match no classifier rule; no service was touched`, {
      lines: [...unclassified, `rules in force: ${rules}`],
      hint: `add a rule for them in the platform repo's release.config.ts (see docs/plugins.md) through a PR and merge it; ${context.dryRun ? 'then preview again' : `then finish this release with: just release-run ${context.ticket} --from=prepare`}`,
      // the rule reaches this clone only through a new pull, which --from=prepare makes
      resumeFrom: 'prepare',
    });
  }
  return classified;
}

/** One action per service and kind, in the order they first appear; removing a service supersedes redeploying it. */
export function planActions(classified: ClassifiedFile[]): Action[] {
  const seen = new Map<string, Action>();
  for (const { classification } of classified) {
    for (const action of classification.actions) {
      const key = `${action.service}\0${action.kind}`;
      if (!seen.has(key)) seen.set(key, action);
    }
  }
  const removed = new Set([...seen.values()].filter((a) => a.kind === 'remove').map((a) => a.service));
  return [...seen.values()].filter((a) => a.kind === 'remove' || !removed.has(a.service));
}

export const scriptPath = (context: RunContext) => join(context.workspaceDir, 'release', 'migrate.sh');

async function migrate(context: RunContext): Promise<void> {
  const state = context.requireState();
  const classified = classifyAll(context, await diffFiles(context, state.baseSha, state.mergeSha));
  for (const { file, classification } of classified) context.out.detail(`${file.path}: ${classification.kind} (${classification.rule})`);
  const actions = planActions(classified);
  const script = renderMigrateScript({
    ticket: context.ticket,
    state,
    classified,
    actions,
    stepCommand: [process.execPath, STEP_BIN, '--repo', context.repoDir, '--ticket', context.ticket],
  });
  const path = scriptPath(context);
  if (context.dryRun) {
    context.out.phase(PLUGIN_NAME, `would write ${path} and run it with: all --no-backup`);
    for (const line of script.split('\n')) context.out.detail(line);
    for (const action of actions) context.out.phase(PLUGIN_NAME, `would ${action.kind} ${action.service}: ${action.reason}`);
    return;
  }
  writeFileAtomic(path, script);
  context.out.phase(PLUGIN_NAME, `${path}: ${classified.length} file(s), ${actions.length} action(s)`);
  for (const action of actions) context.out.phase(PLUGIN_NAME, `${action.kind} ${action.service}: ${action.reason}`);
  const result = await context.exec('bash', [path, 'all', '--no-backup'], {
    env: { RELEASE_ORCHESTRATOR: '1' },
    onLine: (line) => context.out.detail(line),
  });
  if (result.exitCode !== 0) {
    throw new ReleaseError(codeOfExit(result.exitCode), `migrate.sh exited ${result.exitCode}`, {
      lines: result.output.split('\n').slice(-5),
      hint: `read ${path}; resume with --from=migrate once the cause is fixed`,
    });
  }
}

export function migratePlugin(): Plugin {
  return {
    name: PLUGIN_NAME,
    apply({ hooks }) {
      hooks.phase.for('migrate').tapPromise(PLUGIN_NAME, migrate);
    },
  };
}
