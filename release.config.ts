/**
 * The reference config: the one place that composes the built-in plugins. A platform repo's own
 * release.config.ts may export a function that receives this module and returns its own list,
 * e.g. `export default ({ defaultPlugins }) => ({ plugins: [...defaultPlugins(), myRule] })`.
 */
import { z } from 'zod';
import { defineConfig, parseOptions, type Plugin } from './core/index.js';
import { platformPlugin } from './plugins/platform/index.js';
import { preparePlugin } from './plugins/prepare/index.js';
import { defaultRules, globRule, orchestratorSourceRule, serviceFilesRule } from './plugins/classify/index.js';
import { migratePlugin } from './plugins/migrate/index.js';
import { ticketPlugin } from './plugins/ticket/index.js';
import { verifyPlugin } from './plugins/verify/index.js';
import { watchPlugin } from './plugins/watch/index.js';
import { planPlugin } from './plugins/plan/index.js';
import { revertPlugin } from './plugins/revert/index.js';
import { composeRuntimePlugin } from './plugins/runtime-compose/index.js';
import { noneRuntimePlugin } from './plugins/runtime-none/index.js';
import { swarmRuntimePlugin, type SwarmRuntimeOptions } from './plugins/runtime-swarm/index.js';
import { healthHttpPlugin } from './plugins/health-http/index.js';
import { selfUpdatePlugin } from './plugins/self-update/index.js';
import { playbooksPlugin } from './plugins/playbooks/index.js';
import { sqliteBackupPlugin } from './plugins/backup-sqlite/index.js';
import { postgresBackupPlugin } from './plugins/backup-postgres/index.js';
import { backupVolumePlugin, type BackupVolumeOptions } from './plugins/backup-volume/index.js';
import { initPlugin } from './plugins/init/index.js';
import { backupRetentionPlugin } from './plugins/backups/index.js';
import type { DiskSpaceInput, RestoreTestsInput, RetentionInput } from './plugins/backups/options.js';
import { deadlinesPlugin, type DeadlineOptions } from './plugins/deadlines/index.js';
import { lifecycleHooksPlugin, type LifecycleHooksOptions } from './plugins/lifecycle-hooks/index.js';
import { notifyWebhookPlugin } from './plugins/notify-webhook/index.js';
import { notifyRedminePlugin } from './plugins/notify-redmine/index.js';

export const builtins = {
  platformPlugin, preparePlugin, defaultRules, globRule, serviceFilesRule, orchestratorSourceRule, migratePlugin, ticketPlugin, verifyPlugin, watchPlugin, planPlugin, revertPlugin,
  composeRuntimePlugin, noneRuntimePlugin, swarmRuntimePlugin, healthHttpPlugin, selfUpdatePlugin, playbooksPlugin,
  backupVolumePlugin, postgresBackupPlugin, sqliteBackupPlugin, initPlugin, backupRetentionPlugin, deadlinesPlugin, lifecycleHooksPlugin,
  notifyWebhookPlugin, notifyRedminePlugin,
};

/** defaultPlugins()'s options; an unknown one is an error (exit 2) naming it. */
const defaultOptionsSchema = z.strictObject({
  remote: z.string().optional(),
  branch: z.string().optional(),
  /** The compose command, e.g. ['docker-compose']; found at start when absent. */
  composeCommand: z.array(z.string().min(1)).min(1).optional(),
  /** How many services prepare backs up at once (default 2). */
  backupConcurrency: z.number().int().min(1).max(32).optional(),
  /** How many services migrate applies, and verify checks, at once (default: this host's cores). */
  concurrency: z.number().int().min(1).max(64).optional(),
  /** backup-volume's options, e.g. `{ compressor: 'gzip' }` on a host without zstd; that plugin checks them. */
  backupVolume: z.custom<BackupVolumeOptions>((value) => typeof value === 'object' && value !== null && !Array.isArray(value), 'expected an object such as { compressor: \'gzip\' }').optional(),
  /** The room backups and restores must find first, e.g. `{ marginPercent: 20, keepFree: '2GiB' }`; prepare and revert check it. */
  diskSpace: z.custom<DiskSpaceInput>((value) => typeof value === 'object' && value !== null && !Array.isArray(value), 'expected an object such as { marginPercent: 10, keepFree: \'1GiB\' }').optional(),
  /** Backup retention, e.g. `{ keep: 5, autoPrune: true }`: `release prune`'s default and prepare's own prune. */
  retention: z.custom<RetentionInput>((value) => typeof value === 'object' && value !== null && !Array.isArray(value), 'expected an object such as { keep: 3, autoPrune: true }').optional(),
  /** How recent a changed service's last restore test must be, e.g. `{ maxAge: '7d', whenOlder: 'refuse' }`; prepare checks it. */
  restoreTests: z.custom<RestoreTestsInput>((value) => typeof value === 'object' && value !== null && !Array.isArray(value), 'expected an object such as { maxAge: \'30d\', whenOlder: \'warn\' }').optional(),
  /**
   * release-revert backs up the data each restore replaces first (default true), so
   * `release-revert TICKET --undo` can put it back; false on a host without the room for it.
   */
  preRevertBackup: z.boolean().optional(),
  /** Deadlines of external commands per kind, e.g. `{ ticket: '8h', compose: '10m' }`; the deadlines plugin checks them. */
  deadlines: z.custom<DeadlineOptions>((value) => typeof value === 'object' && value !== null && !Array.isArray(value), 'expected an object such as { ticket: \'8h\' }').optional(),
  /**
   * The repo's own lifecycle hooks, run on the host in the repo, e.g.
   * `{ 'pre-deploy': ['./ops/announce.sh'] }`; each service's are in its manifest's `hooks:`.
   */
  hooks: z.custom<LifecycleHooksOptions>((value) => typeof value === 'object' && value !== null && !Array.isArray(value), 'expected an object such as { \'pre-deploy\': [\'./ops/announce.sh\'] }').optional(),
  /** The runtime of services whose manifest names none (default compose). */
  runtime: z.enum(['compose', 'swarm']).optional(),
  /** runtime-swarm's options, e.g. `{ registry: 'registry.internal:5000' }`; that plugin checks them. */
  swarm: z.custom<SwarmRuntimeOptions>((value) => typeof value === 'object' && value !== null && !Array.isArray(value), 'expected an object such as { registry: \'registry.internal:5000\' }').optional(),
});

export type DefaultOptions = z.input<typeof defaultOptionsSchema>;

export function defaultPlugins(rawOptions: DefaultOptions = {}): Plugin[] {
  const options = parseOptions('defaultPlugins()', defaultOptionsSchema, rawOptions);
  return [
    platformPlugin(),
    preparePlugin({ remote: options.remote, branch: options.branch, backupConcurrency: options.backupConcurrency, diskSpace: options.diskSpace, retention: options.retention, restoreTests: options.restoreTests }),
    selfUpdatePlugin(),
    ...defaultRules(),
    migratePlugin({ concurrency: options.concurrency }),
    ticketPlugin(),
    verifyPlugin({ concurrency: options.concurrency }),
    watchPlugin(),
    planPlugin(),
    revertPlugin({ remote: options.remote, branch: options.branch, diskSpace: options.diskSpace, retention: options.retention, preRevertBackup: options.preRevertBackup }),
    // Before compose: a service a release deletes is removed by the runtime whose stack still runs it.
    swarmRuntimePlugin({ composeCommand: options.composeCommand, isDefault: options.runtime === 'swarm', ...options.swarm }),
    composeRuntimePlugin({ command: options.composeCommand, isDefault: options.runtime !== 'swarm' }),
    noneRuntimePlugin(),
    healthHttpPlugin(),
    playbooksPlugin(),
    sqliteBackupPlugin(),
    postgresBackupPlugin(),
    backupVolumePlugin(options.backupVolume),
    initPlugin(),
    backupRetentionPlugin(options.retention, { diskSpace: options.diskSpace }),
    deadlinesPlugin(options.deadlines),
    lifecycleHooksPlugin(options.hooks),
  ];
}

export default defineConfig({ plugins: defaultPlugins() });
