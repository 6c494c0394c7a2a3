import { ReleaseError, type Classification, type ChangedFile, type DiffView, type RunContext } from '../../api/index.js';
import { describeRule } from './index.js';

export interface ClassifiedFile {
  file: ChangedFile;
  classification: Classification;
}

/** Runs the classifier rules over every path of the diff; all unclassified paths are reported at once (exit 5). */
export function classifyAll(context: RunContext, diff: DiffView): ClassifiedFile[] {
  const classified: ClassifiedFile[] = [];
  const unclassified: string[] = [];
  for (const file of diff.files) {
    const classification = context.hooks.classify.call(file, diff, context);
    if (classification) classified.push({ file, classification });
    else unclassified.push(file.path);
  }
  if (unclassified.length > 0) {
    const rules = context.hooks.classify.taps.map((tap) => `  ${describeRule(tap.name)}`);
    throw new ReleaseError('DRIFT', `${unclassified.length} changed file(s) match no classifier rule; no service was touched`, {
      lines: [...unclassified, 'rules in force, in order:', ...(rules.length > 0 ? rules : ['  none'])],
      hint: `add a rule for them in the platform repo's release.config.ts (see docs/plugins.md) through a PR and merge it; ${context.dryRun ? 'then preview again' : `then finish this release with: just release-run ${context.ticket} --from=prepare`}`,
      // the rule reaches this clone only through a new pull, which --from=prepare makes
      resumeFrom: 'prepare',
      reason: 'UNCLASSIFIED_FILES',
    });
  }
  return classified;
}
