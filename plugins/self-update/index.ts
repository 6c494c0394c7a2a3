import type { Plugin } from '../../api/index.js';
import { diffView } from '../../shared/git/diff-view.js';

export const PLUGIN_NAME = 'self-update';
/** The classifications that change what the later phases run: the orchestrator's own code, the platform's config. */
export const HANDOFF_KINDS = new Set(['orchestrator-source', 'release-config']);

/**
 * When the pull brought a change to the orchestrator's own source or config, the phases after
 * prepare must run with the new code: this asks the core to re-run them in a fresh process.
 */
export function selfUpdatePlugin(): Plugin {
  return {
    name: PLUGIN_NAME,
    apply({ hooks }) {
      hooks.phase.for('prepare').tapPromise({ name: PLUGIN_NAME, stage: 100 }, async (context) => {
        const state = context.requireState();
        const diff = await diffView(context, state.baseSha, state.mergeSha);
        const own = diff.files.filter((file) => HANDOFF_KINDS.has(context.hooks.classify.call(file, diff, context)?.kind ?? '')).map((file) => file.path);
        if (own.length === 0) return;
        if (context.dryRun) {
          context.out.phase('prepare', `would re-run the later phases with the pulled config: ${own.join(', ')} changed`);
          return;
        }
        context.requestHandoff(`orchestrator source or release config changed (${own.join(' ')})`);
      });
    },
  };
}
