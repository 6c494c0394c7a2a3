/**
 * The reference config: the one place that composes the built-in plugins. A platform repo's own
 * release.config.ts may export a function that receives this module and returns its own list,
 * e.g. `export default ({ defaultPlugins }) => ({ plugins: [...defaultPlugins(), myRule] })`.
 */
import { defineConfig, type Plugin } from './core/index.js';
import { platformPlugin } from './plugins/platform/index.js';
import { preparePlugin } from './plugins/prepare/index.js';
import { defaultRules, globRule, serviceFilesRule } from './plugins/classify/index.js';
import { migratePlugin } from './plugins/migrate/index.js';
import { ticketPlugin } from './plugins/ticket/index.js';
import { verifyPlugin } from './plugins/verify/index.js';
import { revertPlugin } from './plugins/revert/index.js';

export const builtins = {
  platformPlugin, preparePlugin, defaultRules, globRule, serviceFilesRule, migratePlugin, ticketPlugin, verifyPlugin, revertPlugin,
};

export interface DefaultOptions {
  remote?: string;
  branch?: string;
}

export function defaultPlugins(options: DefaultOptions = {}): Plugin[] {
  return [
    platformPlugin(),
    preparePlugin(options),
    ...defaultRules(),
    migratePlugin(),
    ticketPlugin(),
    verifyPlugin(),
    revertPlugin(options),
  ];
}

export default defineConfig({ plugins: defaultPlugins() });
