import { ReleaseError, type Action, type Classification, type ChangedFile, type Plugin, type RunContext } from '../../core/index.js';
import { diffFiles } from '../git/git.js';

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
      hint: 'add a rule for them in release.config.ts (see docs/plugins.md), then run again with --from=migrate',
    });
  }
  return classified;
}

/** One action per service and kind, in the order they first appear. */
export function planActions(classified: ClassifiedFile[]): Action[] {
  const seen = new Map<string, Action>();
  for (const { classification } of classified) {
    for (const action of classification.actions) {
      const key = `${action.service}\0${action.kind}`;
      if (!seen.has(key)) seen.set(key, action);
    }
  }
  return [...seen.values()];
}

export function migratePlugin(): Plugin {
  return {
    name: PLUGIN_NAME,
    apply({ hooks }) {
      hooks.phase.for('migrate').tapPromise(PLUGIN_NAME, async (context) => {
        const state = context.requireState();
        const classified = classifyAll(context, await diffFiles(context, state.baseSha, state.mergeSha));
        for (const { file, classification } of classified) {
          context.out.detail(`${file.path}: ${classification.kind} (${classification.rule})`);
        }
        const actions = planActions(classified);
        context.out.phase(PLUGIN_NAME, `${actions.length} action(s)`);
        for (const action of actions) {
          if (context.dryRun) {
            context.out.phase(PLUGIN_NAME, `would ${action.kind} ${action.service}: ${action.reason}`);
            continue;
          }
          context.out.phase(PLUGIN_NAME, `${action.kind} ${action.service}: ${action.reason}`);
          const handled = await hooks.apply.promise(action, context);
          if (!handled) {
            context.out.warn(`no runtime plugin handles "${action.kind}"; ${action.service} was left as it is`);
            context.log.event(PLUGIN_NAME, 'unhandled-action', { service: action.service, action: action.kind });
          }
        }
      });
    },
  };
}
