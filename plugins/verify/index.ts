import { ReleaseError, type Plugin } from '../../api/index.js';
import { headSha } from '../git/git.js';
import { requireHealthy, requireNoDrift } from './checks.js';

export const PLUGIN_NAME = 'verify';

export function verifyPlugin(): Plugin {
  return {
    name: PLUGIN_NAME,
    apply({ hooks }) {
      hooks.phase.for('verify').tapPromise(PLUGIN_NAME, async (context) => {
        const state = context.requireState();
        if (context.dryRun) {
          context.out.phase(PLUGIN_NAME, `would check HEAD == ${state.mergeSha.slice(0, 12)}, 0 actions and health for: ${state.services.join(' ') || 'no service'}`);
          return;
        }
        const head = await headSha(context);
        if (head !== state.mergeSha) {
          throw new ReleaseError('PHASE_FAILED', `HEAD is ${head.slice(0, 12)}, not MERGE_SHA ${state.mergeSha.slice(0, 12)}: the clone moved during the release`, {
            hint: 'someone changed the clone by hand; see git reflog',
          });
        }
        context.out.phase(PLUGIN_NAME, `HEAD == MERGE_SHA ${head.slice(0, 12)}`);
        context.failpoint('verify');
        await requireNoDrift(context, state.services);
        await requireHealthy(context, state.services);
      });
    },
  };
}
