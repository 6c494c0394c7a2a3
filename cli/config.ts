import { join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { z } from 'zod';
import { ReleaseError } from '../core/errors.js';
import { invalidInput } from '../core/options.js';
import type { ReleaseConfig } from '../core/plugin.js';

export const CONFIG_FILE = 'release.config.ts';

/** The orchestrator's own composed config, compiled next to core/. */
export const REFERENCE_CONFIG = fileURLToPath(new URL('../release.config.js', import.meta.url));

const pluginSchema = z.object({
  name: z.string({ error: 'needs a name (a non-empty string)' }).min(1, 'needs a name (a non-empty string)'),
  apply: z.custom<(release: unknown) => void>((value) => typeof value === 'function', 'needs an apply(release) function'),
});

const configSchema = z.strictObject({
  plugins: z.array(pluginSchema),
  /** release-run --atomic by default (--no-atomic still turns it off for one run). */
  atomic: z.boolean({ error: 'must be true or false' }).optional(),
});

export interface LoadedConfig {
  config: ReleaseConfig;
  /** The file it came from, for messages and logs. */
  source: string;
}

let hooksRegistered = false;
let loads = 0;

/** Registers the module hooks that load TypeScript configs in place, once per process. */
async function registerConfigHooks(): Promise<void> {
  if (hooksRegistered) return;
  const { register } = await import('node:module');
  register(new URL('./config-hooks.js', import.meta.url), { data: { orchestratorUrl: new URL('../../package.json', import.meta.url).href } });
  hooksRegistered = true;
}

export interface LoadConfigOptions {
  /** Load the config as this commit holds it (its files read with git), not the work tree. */
  commit?: string;
  /** Ignore the repo's config: the reference config alone. */
  referenceOnly?: boolean;
}

/**
 * A repo's release.config.ts may export a config object, or a function that receives the
 * reference config module (its `builtins` and `defaultPlugins`) and returns one. That is how a
 * repo drops, replaces or adds plugins. It is loaded in place: it may import its own files
 * (`./release/plugins/x.ts`), packages of the repo's node_modules, and `release-orchestrator/plugin`.
 */
export async function loadConfig(repoDir: string, options: LoadConfigOptions = {}): Promise<LoadedConfig> {
  const reference = (await import(pathToFileURL(REFERENCE_CONFIG).href)) as Record<string, unknown> & { default: unknown };
  const repoConfigPath = options.referenceOnly ? undefined : await findRepoConfig(repoDir, options.commit);
  const where = options.commit ? ` at ${options.commit.slice(0, 12)}` : '';
  const source = repoConfigPath ? `${relative(process.cwd(), repoConfigPath) || CONFIG_FILE}${where}` : 'the reference release.config.ts';
  let exported: unknown = reference.default;
  if (repoConfigPath) {
    try {
      await registerConfigHooks();
      const query = new URLSearchParams({ 'ro-root': repoDir, ...(options.commit ? { 'ro-commit': options.commit } : {}), 'ro-load': String(++loads) });
      const module = (await import(`${pathToFileURL(repoConfigPath).href}?${query}`)) as Record<string, unknown>;
      exported = module.default;
      if (typeof exported === 'function') exported = await (exported as (ref: unknown) => unknown)(reference);
    } catch (error) {
      if (error instanceof ReleaseError) {
        // e.g. an unknown option of defaultPlugins() or of a rule: name the file it is in
        if (error.message.startsWith(source)) throw error;
        throw new ReleaseError(error.code, `${source}: ${error.message}`, { hint: error.hint, lines: error.lines, cause: error });
      }
      const message = error instanceof Error ? error.message.split('\n')[0]!.replaceAll(`${repoDir}/`, '') : String(error);
      const syntax = /^(\S+):(\d+):(\d+): (.*)$/.exec(message);
      if (syntax) {
        const [, file, line, column, what] = syntax;
        throw new ReleaseError('BAD_INPUT', `${file}:${line}:${column}: syntax error: ${what}`, { hint: `fix ${file} at line ${line}, column ${column}` });
      }
      throw new ReleaseError('BAD_INPUT', `${source} failed to load: ${message}`, {
        hint: `fix ${CONFIG_FILE} (it must export default a config object or a function returning one)`,
      });
    }
  }
  return { config: validateConfig(exported, source), source };
}
export function validateConfig(exported: unknown, source: string): ReleaseConfig {
  const parsed = configSchema.safeParse(exported);
  if (!parsed.success) throw invalidInput(source, parsed.error, `fix that key in ${CONFIG_FILE}`);
  const seen = new Set<string>();
  parsed.data.plugins.forEach((plugin, index) => {
    if (seen.has(plugin.name)) {
      throw new ReleaseError('BAD_INPUT', `${source}: plugins[${index}].name: duplicate plugin name "${plugin.name}"`, {
        hint: 'give each plugin a unique name, or drop one of the two',
      });
    }
    seen.add(plugin.name);
  });
  return parsed.data as ReleaseConfig;
}

async function findRepoConfig(repoDir: string, commit?: string): Promise<string | undefined> {
  if (commit) {
    const { exec } = await import('../core/exec.js');
    const { GIT_READ_DEADLINE_MS } = await import('./config-hooks.js');
    const found = await exec('git', ['cat-file', '-e', `${commit}:${CONFIG_FILE}`], { cwd: repoDir, deadlineMs: GIT_READ_DEADLINE_MS });
    return found.exitCode === 0 ? join(repoDir, CONFIG_FILE) : undefined;
  }
  const { cosmiconfig } = await import('cosmiconfig');
  // Only this exact file in the repo's top level: cosmiconfig's default places for the name
  // "release" are semantic-release's files, and searching upwards could find another repo's.
  const explorer = cosmiconfig('release', {
    searchPlaces: [CONFIG_FILE],
    searchStrategy: 'none',
    loaders: { '.ts': () => ({}) },
  });
  const found = await explorer.search(repoDir);
  return found?.filepath;
}
