import { ReleaseError, parseOptions, z, type Plugin } from '../../api/index.js';
import { headSha } from '../../shared/git/git.js';
import { requireHealthy, requireNoDrift } from './checks.js';

export const PLUGIN_NAME = 'verify';

const optionsSchema = z.strictObject({
  /** Services whose drift checks and health probes run at once; default: this host's cores. */
  concurrency: z.number().int().min(1).max(64).optional(),
});

export function verifyPlugin(rawOptions: z.input<typeof optionsSchema> = {}): Plugin {
  const { concurrency } = parseOptions(PLUGIN_NAME, optionsSchema, rawOptions);
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
        await requireNoDrift(context, state.services, concurrency);
        await requireHealthy(context, state.services, concurrency);
      });
    },
  };
}
