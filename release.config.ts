/**
 * The reference config: the one place that composes the built-in plugins. A platform repo's own
 * release.config.ts may export a function that receives this module and returns its own list,
 * e.g. `export default ({ defaultPlugins }) => ({ plugins: [...defaultPlugins(), myRule] })`.
 */
import { defineConfig, type Plugin } from './core/index.js';
import { platformPlugin } from './plugins/platform/index.js';
import { preparePlugin } from './plugins/prepare/index.js';
import { defaultRules, globRule, orchestratorSourceRule, serviceFilesRule } from './plugins/classify/index.js';
import { migratePlugin } from './plugins/migrate/index.js';
import { ticketPlugin } from './plugins/ticket/index.js';
import { verifyPlugin } from './plugins/verify/index.js';
import { revertPlugin } from './plugins/revert/index.js';
import { composeRuntimePlugin } from './plugins/runtime-compose/index.js';
import { noneRuntimePlugin } from './plugins/runtime-none/index.js';
import { healthHttpPlugin } from './plugins/health-http/index.js';
import { selfUpdatePlugin } from './plugins/self-update/index.js';
import { playbooksPlugin } from './plugins/playbooks/index.js';
import { sqliteBackupPlugin } from './plugins/backup-sqlite/index.js';
import { postgresBackupPlugin } from './plugins/backup-postgres/index.js';
import { backupVolumePlugin } from './plugins/backup-volume/index.js';

export const builtins = {
  platformPlugin, preparePlugin, defaultRules, globRule, serviceFilesRule, orchestratorSourceRule, migratePlugin, ticketPlugin, verifyPlugin, revertPlugin,
  composeRuntimePlugin, noneRuntimePlugin, healthHttpPlugin, selfUpdatePlugin, playbooksPlugin,
  backupVolumePlugin, postgresBackupPlugin, sqliteBackupPlugin,
};

export interface DefaultOptions {
  remote?: string;
  branch?: string;
  /** The compose command, e.g. ['docker-compose']; found at start when absent. */
  composeCommand?: string[];
}

export function defaultPlugins(options: DefaultOptions = {}): Plugin[] {
  return [
    platformPlugin(),
    preparePlugin({ remote: options.remote, branch: options.branch }),
    selfUpdatePlugin(),
    ...defaultRules(),
    migratePlugin(),
    ticketPlugin(),
    verifyPlugin(),
    revertPlugin({ remote: options.remote, branch: options.branch }),
    composeRuntimePlugin({ command: options.composeCommand }),
    noneRuntimePlugin(),
    healthHttpPlugin(),
    playbooksPlugin(),
    sqliteBackupPlugin(),
    postgresBackupPlugin(),
    backupVolumePlugin(),
  ];
}

export default defineConfig({ plugins: defaultPlugins() });
