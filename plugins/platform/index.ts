import type { Plugin } from '../../core/index.js';
import { readManifest } from './manifest.js';

export const PLUGIN_NAME = 'platform';

/**
 * The platform repo's services: the drift check of an unknown service fails here first (exit 2),
 * before any runtime plugin looks at it.
 */
export function platformPlugin(): Plugin {
  return {
    name: PLUGIN_NAME,
    apply({ hooks }) {
      hooks.plan.tapPromise({ name: PLUGIN_NAME, stage: -100 }, async (service, context) => {
        readManifest(context.repoDir, service);
      });
    },
  };
}
