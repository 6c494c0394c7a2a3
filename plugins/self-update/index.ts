import type { Plugin } from '../../core/index.js';
import { diffFiles } from '../git/git.js';

export const PLUGIN_NAME = 'self-update';
/** The classification the default rules give the orchestrator's own files. */
export const ORCHESTRATOR_SOURCE = 'orchestrator-source';

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
        const files = await diffFiles(context, state.baseSha, state.mergeSha);
        const own = files.filter((file) => hooks.classify.call(file, context)?.kind === ORCHESTRATOR_SOURCE).map((file) => file.path);
        if (own.length === 0) return;
        if (context.dryRun) {
          context.out.phase('prepare', `would re-run the later phases with the pulled config: ${own.join(', ')} changed`);
          return;
        }
        context.requestHandoff(`orchestrator source changed (${own.join(' ')})`);
      });
    },
  };
}
