import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Plugin, RunContext } from '../../api/index.js';
import { manifestPath, readManifest } from '../platform/manifest.js';

export const PLUGIN_NAME = 'runtime-none';
export const RUNTIME = 'none';

/** The actions a deployed service can be asked for; for a `runtime: none` service each is a logged no-op. */
const KINDS = ['build', 'redeploy', 'recreate', 'stop', 'start'];

/**
 * Services with `runtime: none` in their manifest are released in git only: nothing runs them
 * here (a library, a config folder another host reads, a service deployed elsewhere). Their
 * backups and health probes still apply. Saying so in the manifest is what makes their actions
 * pass: a service no runtime claims fails the release instead.
 */
export function noneRuntimePlugin(): Plugin {
  const isNone = (context: RunContext, service: string) =>
    existsSync(join(context.repoDir, manifestPath(service))) && readManifest(context.repoDir, service).runtime === RUNTIME;
  return {
    name: PLUGIN_NAME,
    apply({ hooks }) {
      for (const kind of KINDS) {
        hooks.act.for(kind).tapPromise(PLUGIN_NAME, async (action, context) => {
          if (!isNone(context, action.service)) return undefined;
          context.log.event('apply', 'nothing-to-deploy', { service: action.service, action: action.kind });
          return true;
        });
      }
    },
  };
}
