import type { Plugin } from '../../api/index.js';
import { readManifest } from './manifest.js';

export const PLUGIN_NAME = 'platform';

/**
 * The platform repo's services: `release --service=NAME` of an unknown service fails here first
 * (exit 2), before any runtime plugin looks at it.
 */
export function platformPlugin(): Plugin {
  return {
    name: PLUGIN_NAME,
    apply({ hooks }) {
      hooks.plan.tapPromise({ name: PLUGIN_NAME, stage: -100 }, async (service, context) => {
        // Inside a release a service may be one the release removed (or a revert removes): its
        // desired state is "absent", which the runtime plans for. Only the operator's own
        // drift check of a name that never existed is an input error.
        if (context.verb === 'release') readManifest(context.repoDir, service);
      });
    },
  };
}
