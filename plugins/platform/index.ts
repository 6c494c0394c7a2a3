import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Plugin } from '../../api/index.js';
import { readHistory } from '../../core/history.js';
import { manifestPath, readManifest } from './manifest.js';

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
        // desired state is "absent", which the runtime plans for. So is one HEAD dropped that an
        // earlier release ran here. Only a name that never existed is an input error.
        if (context.verb !== 'release' || existsSync(join(context.repoDir, manifestPath(service)))) return;
        if (readHistory(context.workspaceDir, { service }).length === 0) readManifest(context.repoDir, service);
      });
    },
  };
}
