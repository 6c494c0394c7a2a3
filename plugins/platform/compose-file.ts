import { posix } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { ReleaseError, type DiffView } from '../../api/index.js';
import { composePath, SERVICES_DIR } from './manifest.js';

/**
 * What a service's compose file says about the files of the repo: which folders are build
 * contexts and which files are mounted into containers. Read from a real YAML parse, so the
 * classifier and the drift check agree on every file's role.
 */
export interface ComposeService {
  name: string;
  /** `image:` as written, e.g. `${IMAGE}` or `postgres:15`. */
  image?: string;
  /** Repo-relative build context folder and Dockerfile, when the service has `build:`. */
  build?: { context: string; dockerfile: string };
  /** Repo-relative paths bind-mounted, given as `env_file`, or as `configs` or `secrets` files. */
  mounts: string[];
  /** Repo-relative `secrets:` files it is given: mounted, and never to be printed. */
  secrets: string[];
}

export interface ComposeFile {
  services: ComposeService[];
  /**
   * The other files compose reads as part of this one, repo-relative: `include:` files (and their
   * `env_file:`), `extends: { file }` files. A change to one changes what the file renders.
   */
  sources: string[];
}

/** The manifest's image goes to compose as this variable. */
export const IMAGE_VARIABLE = '${IMAGE}';

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

function fail(file: string, key: string, message: string): never {
  throw new ReleaseError('BAD_INPUT', `${file}: ${key}: ${message}`, { hint: 'fix that key in the compose file' });
}

/**
 * A relative host path of the compose file, as a repo-relative path; undefined for absolute
 * paths, paths outside the repo, named volumes and paths built from variables.
 */
function repoPath(composeDir: string, path: string): string | undefined {
  if (path.includes('$') || posix.isAbsolute(path) || path.startsWith('~')) return undefined;
  const joined = posix.normalize(posix.join(composeDir, path)).replace(/\/$/, '');
  return joined === '..' || joined.startsWith('../') ? undefined : joined;
}

/** A bind mount's host side, from the short (`./conf:/etc/x:ro`) or long (`{type: bind, source}`) syntax. */
function bindSource(volume: unknown): string | undefined {
  if (typeof volume === 'string') {
    const source = volume.split(':')[0]!;
    // Only paths are bind mounts; a bare name is a named volume.
    return source.startsWith('.') || source.startsWith('/') || source.startsWith('~') ? source : undefined;
  }
  if (isRecord(volume) && volume.type === 'bind' && typeof volume.source === 'string') return volume.source;
  return undefined;
}

function envFiles(value: unknown): string[] {
  const list = Array.isArray(value) ? value : value === undefined ? [] : [value];
  return list.map((item) => (isRecord(item) ? item.path : item)).filter((item): item is string => typeof item === 'string');
}

/** Parses a compose file's text; `file` is its repo-relative path, which anchors relative paths. */
export function parseComposeFile(text: string, file: string): ComposeFile {
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (error) {
    throw new ReleaseError('BAD_INPUT', `${file}: not valid YAML: ${(error as Error).message.split('\n')[0]}`, { hint: 'fix the YAML syntax' });
  }
  if (!isRecord(raw)) fail(file, '(top level)', 'expected a mapping with services:');
  if (!isRecord(raw.services)) fail(file, 'services', 'expected a mapping of compose services');
  const dir = posix.dirname(file);
  const topFile = (section: unknown) => (ref: unknown) => {
    const name = typeof ref === 'string' ? ref : isRecord(ref) && typeof ref.source === 'string' ? ref.source : '';
    const entry = isRecord(section) ? section[name] : undefined;
    return isRecord(entry) && typeof entry.file === 'string' ? entry.file : undefined;
  };
  const configFile = topFile(raw.configs);
  const secretFile = topFile(raw.secrets);
  const inRepo = (paths: (string | undefined)[]) => [...new Set(paths.filter((path): path is string => path !== undefined)
    .map((path) => repoPath(dir, path)).filter((path): path is string => path !== undefined))].sort();
  const services = Object.entries(raw.services).map(([name, body]): ComposeService => {
    if (!isRecord(body)) fail(file, `services.${name}`, 'expected a mapping');
    if (body.image !== undefined && typeof body.image !== 'string') fail(file, `services.${name}.image`, 'expected a string');
    if (body.image === undefined && body.build === undefined && body.extends === undefined) fail(file, `services.${name}`, 'needs an image: or a build:');
    let build: ComposeService['build'];
    if (body.build !== undefined) {
      const spec = typeof body.build === 'string' ? { context: body.build } : body.build;
      if (!isRecord(spec)) fail(file, `services.${name}.build`, 'expected a path or a mapping with context:');
      const contextDir = typeof spec.context === 'string' ? spec.context : '.';
      const context = repoPath(dir, contextDir);
      if (context === undefined) fail(file, `services.${name}.build.context`, `"${contextDir}" must be a folder of this repo`);
      const dockerfile = typeof spec.dockerfile === 'string' ? spec.dockerfile : 'Dockerfile';
      build = { context, dockerfile: posix.normalize(posix.join(context, dockerfile)) };
    }
    const volumes = Array.isArray(body.volumes) ? body.volumes : [];
    const configs = Array.isArray(body.configs) ? body.configs : [];
    const secrets = inRepo((Array.isArray(body.secrets) ? body.secrets : []).map(secretFile));
    const mounts = [...new Set([...inRepo([...volumes.map(bindSource), ...envFiles(body.env_file), ...configs.map(configFile)]), ...secrets])].sort();
    return { name, image: body.image as string | undefined, build, mounts, secrets };
  });
  const included = (Array.isArray(raw.include) ? raw.include : []).flatMap((entry): unknown[] => {
    if (typeof entry === 'string') return [entry];
    if (!isRecord(entry)) return [];
    return [...(Array.isArray(entry.path) ? entry.path : [entry.path]), ...envFiles(entry.env_file)];
  });
  const extended = Object.values(raw.services).map((body) => (isRecord(body) && isRecord(body.extends) ? body.extends.file : undefined));
  const sources = inRepo([...included, ...extended].map((path) => (typeof path === 'string' ? path : undefined)));
  return { services, sources };
}

const within = (folder: string, path: string) => folder === '.' || path === folder || path.startsWith(`${folder}/`);

/** The role a repo path plays for one compose file: which services build from it or mount it. */
export function composeRoles(compose: ComposeFile, path: string): { builds: string[]; mounts: string[] } {
  const builds = compose.services.filter((s) => s.build && (within(s.build.context, path) || s.build.dockerfile === path)).map((s) => s.name);
  const mounts = compose.services.filter((s) => s.mounts.some((mount) => within(mount, path))).map((s) => s.name);
  return { builds, mounts };
}

/** A build context of one service that lies outside its own folder (e.g. `build: ../../shared/base`). */
interface ForeignContext {
  service: string;
  composeService: string;
  context: string;
  dockerfile: string;
}

/** What every compose file at MERGE_SHA says about files outside its own reading, once per diff. */
interface RepoComposeFacts {
  /** Build contexts outside their service's folder. */
  contexts: ForeignContext[];
  /** Per repo path, the services whose compose file reads it as part of itself (include:, extends:). */
  readers: Map<string, string[]>;
}

const factsOfDiff = new WeakMap<DiffView, RepoComposeFacts>();

function repoComposeFacts(diff: DiffView): RepoComposeFacts {
  let found = factsOfDiff.get(diff);
  if (found) return found;
  found = { contexts: [], readers: new Map() };
  const services = diff.list(SERVICES_DIR);
  diff.prefetch(services.map(composePath));
  for (const service of services) {
    const text = diff.read(composePath(service));
    if (text === undefined) continue;
    let compose: ComposeFile;
    try {
      compose = parseComposeFile(text, composePath(service));
    } catch {
      continue; // a service this release does not touch is not judged by it (prepare checks the changed ones)
    }
    const own = `${SERVICES_DIR}/${service}/`;
    for (const spec of compose.services) {
      if (spec.build && !`${spec.build.context}/`.startsWith(own)) {
        found.contexts.push({ service, composeService: spec.name, context: spec.build.context, dockerfile: spec.build.dockerfile });
      }
    }
    for (const source of compose.sources) found.readers.set(source, [...(found.readers.get(source) ?? []), service]);
  }
  factsOfDiff.set(diff, found);
  return found;
}

const foreignContexts = (diff: DiffView) => repoComposeFacts(diff).contexts;

/** The services whose compose file reads `path` as part of itself (an `include:` or `extends:` file). */
export const composeReaders = (diff: DiffView, path: string): string[] => repoComposeFacts(diff).readers.get(path) ?? [];

/**
 * The services (and their compose services) whose build context, outside their own folder, holds
 * `path`: a change to it rebuilds them too. `except` leaves out the service that owns the path.
 */
export function foreignBuilders(diff: DiffView, path: string, except?: string): Map<string, string[]> {
  const builders = new Map<string, string[]>();
  for (const ctx of foreignContexts(diff)) {
    if (ctx.service === except || !(path.startsWith(`${ctx.context}/`) || ctx.context === '.' || path === ctx.dockerfile)) continue;
    builders.set(ctx.service, [...(builders.get(ctx.service) ?? []), ctx.composeService]);
  }
  return builders;
}
