/**
 * backups: the plugin behind `release prune` (backup retention) and `release verify-backups`
 * (restore tests, verify.ts). Taking backups in prepare and restoring them in revert live beside
 * it (take.ts, restore.ts) and are called by those phases.
 */
import { parseOptions, type Plugin, type RunContext } from '../../api/index.js';
import { type PruneRequest } from '../../core/index.js';
import { diskSpaceSchema, retentionSchema, type DiskSpaceInput, type RetentionInput, type RetentionOptions } from './options.js';
import { carryOutPrune, loadReleases, planPrune } from './retention.js';
import { verifyBackups } from './verify.js';

export const PLUGIN_NAME = 'backup-retention';

async function prune(request: PruneRequest, context: RunContext, options: RetentionOptions): Promise<void> {
  const keep = request.keep ?? options.keep;
  context.out.info(`${context.dryRun ? 'dry run: ' : ''}removing the backups of releases older than the newest ${keep}, except those a resume or release-revert still needs`);
  const plan = planPrune(context, await loadReleases(context), keep);
  const result = carryOutPrune(context, plan, (line) => context.out.plain(line), 'release-prune');
  request.removed.push(...result.removed);
  request.freedBytes += result.freedBytes;
}

/** `diskSpace`: the room restore tests must find in their scratch folder (the same option prepare and revert read). */
export function backupRetentionPlugin(rawOptions: RetentionInput = {}, more: { diskSpace?: DiskSpaceInput } = {}): Plugin {
  const options = parseOptions(PLUGIN_NAME, retentionSchema, rawOptions);
  const space = parseOptions(PLUGIN_NAME, diskSpaceSchema, more.diskSpace ?? {});
  return {
    name: PLUGIN_NAME,
    apply({ hooks }) {
      hooks.prune.tapPromise(PLUGIN_NAME, (request, context) => prune(request, context, options));
      hooks.verifyBackups.tapPromise(PLUGIN_NAME, (request, context) => verifyBackups(context, request, space, options));
    },
  };
}
