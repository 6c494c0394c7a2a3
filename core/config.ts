import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { z } from 'zod';
import { ReleaseError } from './errors.js';
import type { ReleaseConfig } from './plugin.js';

export const CONFIG_FILE = 'release.config.ts';

/** The orchestrator's own composed config, compiled next to core/. */
export const REFERENCE_CONFIG = fileURLToPath(new URL('../release.config.js', import.meta.url));

const pluginSchema = z.object({
  name: z.string({ error: 'needs a name (a non-empty string)' }).min(1, 'needs a name (a non-empty string)'),
  apply: z.custom<(release: unknown) => void>((value) => typeof value === 'function', 'needs an apply(release) function'),
});

const configSchema = z.strictObject({
  plugins: z.array(pluginSchema),
});

export interface LoadedConfig {
  config: ReleaseConfig;
  /** The file it came from, for messages and logs. */
  source: string;
}

/** Turns a zod issue path into `plugins[2].name`. */
function keyPath(path: readonly PropertyKey[]): string {
  return path.reduce<string>((acc, part) => (typeof part === 'number' ? `${acc}[${part}]` : acc ? `${acc}.${String(part)}` : String(part)), '');
}

/**
 * A repo's release.config.ts may export a config object, or a function that receives the
 * reference config module (its `builtins` and `defaultPlugins`) and returns one. That is how a
 * repo drops, replaces or adds plugins without importing the orchestrator by path.
 */
export async function loadConfig(repoDir: string): Promise<LoadedConfig> {
  const reference = (await import(pathToFileURL(REFERENCE_CONFIG).href)) as Record<string, unknown> & { default: unknown };
  const repoConfigPath = await findRepoConfig(repoDir);
  const source = repoConfigPath ? relative(process.cwd(), repoConfigPath) || CONFIG_FILE : 'the reference release.config.ts';
  let exported: unknown = reference.default;
  if (repoConfigPath) {
    try {
      const module = await importTypeScript(repoConfigPath);
      exported = module.default;
      if (typeof exported === 'function') exported = await (exported as (ref: unknown) => unknown)(reference);
    } catch (error) {
      if (error instanceof ReleaseError) {
        // e.g. an unknown option of defaultPlugins() or of a rule: name the file it is in
        if (error.message.startsWith(source)) throw error;
        throw new ReleaseError(error.code, `${source}: ${error.message}`, { hint: error.hint, lines: error.lines, cause: error });
      }
      const message = error instanceof Error ? error.message.split('\n')[0] : String(error);
      throw new ReleaseError('BAD_INPUT', `${source} failed to load: ${message}`, {
        hint: `fix ${CONFIG_FILE} (it must export default a config object or a function returning one)`,
      });
    }
  }
  return { config: validateConfig(exported, source), source };
}

export function validateConfig(exported: unknown, source: string): ReleaseConfig {
  const parsed = configSchema.safeParse(exported);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const key = keyPath(issue.path) || '(the default export)';
    throw new ReleaseError('BAD_INPUT', `${source}: ${key}: ${issue.message}`, {
      hint: `fix that key in ${CONFIG_FILE}`,
    });
  }
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

async function findRepoConfig(repoDir: string): Promise<string | undefined> {
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

/**
 * Transpiles a config to a private temp folder and imports it. TypeScript is loaded only here,
 * when a repo has its own config, so the bins start fast otherwise.
 */
async function importTypeScript(path: string): Promise<Record<string, unknown>> {
  const { readFileSync } = await import('node:fs');
  const ts = (await import('typescript')).default;
  const output = ts.transpileModule(readFileSync(path, 'utf8'), {
    fileName: path,
    reportDiagnostics: true,
    compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
  });
  const problem = output.diagnostics?.find((d) => d.category === ts.DiagnosticCategory.Error);
  if (problem) {
    const text = ts.flattenDiagnosticMessageText(problem.messageText, ' ');
    const at = problem.file && problem.start !== undefined ? ts.getLineAndCharacterOfPosition(problem.file, problem.start) : undefined;
    const where = at ? `${relative(process.cwd(), path) || CONFIG_FILE}:${at.line + 1}:${at.character + 1}` : relative(process.cwd(), path) || CONFIG_FILE;
    throw new ReleaseError('BAD_INPUT', `${where}: syntax error: ${text}`, {
      hint: `fix ${CONFIG_FILE} at line ${at ? at.line + 1 : '?'}, column ${at ? at.character + 1 : '?'}`,
    });
  }
  const dir = mkdtempSync(join(tmpdir(), 'release-config-'));
  try {
    const file = join(dir, 'release.config.mjs');
    writeFileSync(file, output.outputText, { mode: 0o600 });
    return (await import(pathToFileURL(file).href)) as Record<string, unknown>;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
