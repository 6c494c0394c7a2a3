/**
 * Node module hooks (module.register) that load a platform repo's release.config.ts in place:
 * TypeScript is transpiled in memory with sucrase (no file is written anywhere), relative imports
 * of the config's own files work, `release-orchestrator/...` resolves to this orchestrator, and a
 * package the platform lacks (e.g. zod) falls back to ours. A config can also be loaded as a
 * commit holds it: its files inside the repo are then read with git, not from the work tree.
 *
 * Which loads these hooks govern is carried in the URL's query (`ro-root`, `ro-commit`, `ro-load`),
 * handed from each module to the ones it imports, so two loads of one file never share a cache entry.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { exec } from '../core/exec.js';

/**
 * How long one git read of a config file at a commit may take. The config is loaded before any
 * run exists (it sets the deadlines), so its reads run through core/exec with this fixed bound.
 */
export const GIT_READ_DEADLINE_MS = 60_000;
const gitRead = (root: string, args: string[]) => exec('git', args, { cwd: root, deadlineMs: GIT_READ_DEADLINE_MS });

interface HookData { orchestratorUrl: string }
type Resolved = { url: string; format?: string; shortCircuit?: boolean };
type NextResolve = (specifier: string, context: { parentURL?: string; conditions?: string[] }) => Promise<Resolved>;
type NextLoad = (url: string, context: object) => Promise<{ format: string; source?: string | Buffer }>;

let orchestratorUrl = '';
let transform: ((code: string, options: object) => { code: string }) | undefined;

/** sucrase, loaded through require: its ESM build loads slower. */
const loadTransform = () => (transform ??= (createRequire(import.meta.url)('sucrase') as { transform: typeof transform }).transform!);

export async function initialize(data: HookData): Promise<void> {
  orchestratorUrl = data.orchestratorUrl;
  // Load the compiler now, while the main thread goes on loading the orchestrator's own modules.
  setImmediate(loadTransform);
}

const TS = /\.(m|c)?ts$/;
const QUERY_KEYS = ['ro-root', 'ro-commit', 'ro-load'];

/** The load a URL belongs to, from its query; undefined for modules outside any config load. */
function loadOf(url: string): { root: string; commit?: string; query: string } | undefined {
  if (!url.startsWith('file:')) return undefined;
  const parsed = new URL(url);
  const root = parsed.searchParams.get('ro-root');
  if (!root) return undefined;
  const query = new URLSearchParams(QUERY_KEYS.filter((key) => parsed.searchParams.has(key)).map((key) => [key, parsed.searchParams.get(key)!])).toString();
  return { root, commit: parsed.searchParams.get('ro-commit') ?? undefined, query };
}

const insideRepo = (root: string, path: string) => path.startsWith(`${root}/`) && !path.slice(root.length).split('/').includes('node_modules');

async function existsAt(load: { root: string; commit?: string }, path: string): Promise<boolean> {
  if (!load.commit) return existsSync(path);
  return (await gitRead(load.root, ['cat-file', '-e', `${load.commit}:${path.slice(load.root.length + 1)}`])).exitCode === 0;
}

export async function resolve(specifier: string, context: { parentURL?: string; conditions?: string[] }, nextResolve: NextResolve): Promise<Resolved> {
  if (specifier === 'release-orchestrator' || specifier.startsWith('release-orchestrator/')) {
    return nextResolve(specifier, { ...context, parentURL: orchestratorUrl });
  }
  // The config itself: its URL carries the load, and at a commit it need not exist on disk.
  const entry = loadOf(specifier);
  if (entry) return { url: specifier, format: 'module', shortCircuit: true };
  const load = context.parentURL ? loadOf(context.parentURL) : undefined;
  if (load && (specifier.startsWith('.') || specifier.startsWith('/'))) {
    const target = new URL(specifier, context.parentURL);
    let path = fileURLToPath(target);
    if (insideRepo(load.root, path)) {
      // TypeScript's own convention: `./x.js` in source names `./x.ts`.
      if (!(await existsAt(load, path)) && /\.(m|c)?js$/.test(path)) {
        const ts = path.replace(/js$/, 'ts');
        if (await existsAt(load, ts)) path = ts;
      }
      if (!(await existsAt(load, path))) {
        throw Object.assign(new Error(`Cannot find module '${specifier}' imported from ${fileURLToPath(context.parentURL!)}${load.commit ? ` at commit ${load.commit.slice(0, 12)}` : ''}`), { code: 'ERR_MODULE_NOT_FOUND' });
      }
      return { url: `${pathToFileURL(path).href}?${load.query}`, format: 'module', shortCircuit: true };
    }
  }
  try {
    return await nextResolve(specifier, context);
  } catch (error) {
    // A package the platform repo does not install itself (zod, say): the orchestrator's copy.
    const bare = !specifier.startsWith('.') && !specifier.startsWith('/') && !specifier.startsWith('node:') && !specifier.includes(':');
    if (load && bare && (error as { code?: string }).code === 'ERR_MODULE_NOT_FOUND') return nextResolve(specifier, { ...context, parentURL: orchestratorUrl });
    throw error;
  }
}

export async function load(url: string, context: object, nextLoad: NextLoad): Promise<{ format: string; source?: string | Buffer; shortCircuit?: boolean }> {
  const load = loadOf(url);
  if (!load) return nextLoad(url, context);
  const path = fileURLToPath(url.replace(/\?.*$/, ''));
  let source: string;
  if (load.commit) {
    const shown = await gitRead(load.root, ['show', `${load.commit}:${path.slice(load.root.length + 1)}`]);
    if (shown.exitCode !== 0) throw new Error(`git show ${load.commit.slice(0, 12)}:${path.slice(load.root.length + 1)} failed: ${shown.stderr.trim().split('\n').pop()}`);
    source = shown.stdout;
  } else {
    source = readFileSync(path, 'utf8');
  }
  if (!TS.test(path)) return { format: 'module', source, shortCircuit: true };
  let code: string;
  try {
    ({ code } = loadTransform()(source, { transforms: ['typescript'], disableESTransforms: true, filePath: path }));
  } catch (error) {
    // sucrase says `Error transforming FILE: Unexpected token (LINE:COLUMN)`: keep FILE:LINE:COLUMN together.
    const message = (error as Error).message.replace(/^Error transforming [^:]*: /, '');
    const at = /\((\d+):(\d+)\)$/.exec(message);
    throw new SyntaxError(`${path}${at ? `:${at[1]}:${at[2]}` : ''}: ${message.replace(/ \(\d+:\d+\)$/, '')}`);
  }
  return { format: 'module', source: `${code}\n//# sourceURL=${path}`, shortCircuit: true };
}
