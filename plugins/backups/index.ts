/**
 * backups: the plugin behind `release prune` (backup retention). Taking backups in prepare and
 * restoring them in revert live beside it (take.ts, restore.ts) and are called by those phases.
 */
import { parseOptions, type Plugin, type PruneRequest, type RunContext } from '../../api/index.js';
import { retentionSchema, type RetentionInput, type RetentionOptions } from './options.js';
import { carryOutPrune, loadReleases, planPrune } from './retention.js';

export const PLUGIN_NAME = 'backup-retention';

async function prune(request: PruneRequest, context: RunContext, options: RetentionOptions): Promise<void> {
  const keep = request.keep ?? options.keep;
  context.out.info(`${context.dryRun ? 'dry run: ' : ''}removing the backups of releases older than the newest ${keep}, except those a resume or release-revert still needs`);
  const plan = planPrune(context, await loadReleases(context), keep);
  const result = carryOutPrune(context, plan, (line) => context.out.plain(line), 'release-prune');
  request.removed.push(...result.removed);
  request.freedBytes += result.freedBytes;
}

export function backupRetentionPlugin(rawOptions: RetentionInput = {}): Plugin {
  const options = parseOptions(PLUGIN_NAME, retentionSchema, rawOptions);
  return {
    name: PLUGIN_NAME,
    apply({ hooks }) {
      hooks.prune.tapPromise(PLUGIN_NAME, (request, context) => prune(request, context, options));
    },
  };
}
