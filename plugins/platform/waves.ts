import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ReleaseError, type RunContext } from '../../api/index.js';
import { showFile } from '../../shared/git/git.js';
import { manifestPath, parseManifest, readManifest } from './manifest.js';

/** A service's `after:` list, or undefined when the service has no manifest (it is not a service). */
export type AfterOf = (service: string) => readonly string[] | undefined;

/**
 * The services that `start` reach through `after:`, with their lists; refuses (exit 2) an `after:`
 * naming a service that does not exist, and a cycle, naming the services in it.
 */
export function dependencyGraph(start: readonly string[], afterOf: AfterOf): Map<string, readonly string[]> {
  const graph = new Map<string, readonly string[]>();
  const pending = [...start];
  while (pending.length > 0) {
    const service = pending.pop()!;
    if (graph.has(service)) continue;
    const after = afterOf(service) ?? [];
    graph.set(service, after);
    for (const needed of after) {
      if (afterOf(needed) === undefined) {
        throw new ReleaseError('BAD_INPUT', `${manifestPath(service)}: after: names "${needed}", which is not a service (no ${manifestPath(needed)}); nothing was changed`, {
          hint: `fix the name in after:, or drop it; services are the folders of packages/ with a manifest.yaml`,
          service,
        });
      }
      pending.push(needed);
    }
  }
  const cycle = findCycle(graph);
  if (cycle) {
    throw new ReleaseError('BAD_INPUT', `after: forms a cycle: ${cycle.join(' -> ')}; nothing was changed`, {
      hint: `drop one of these after: entries: ${cycle.slice(0, -1).map((service, index) => `${manifestPath(service)} (after: ${cycle[index + 1]})`).join(', ')}`,
      service: cycle[0],
    });
  }
  return graph;
}

/** A cycle as `a -> b -> a` (each needs the next), or undefined. */
function findCycle(graph: ReadonlyMap<string, readonly string[]>): string[] | undefined {
  const state = new Map<string, 'open' | 'done'>();
  const path: string[] = [];
  const visit = (service: string): string[] | undefined => {
    if (state.get(service) === 'done') return undefined;
    if (state.get(service) === 'open') return [...path.slice(path.indexOf(service)), service];
    state.set(service, 'open');
    path.push(service);
    for (const needed of [...(graph.get(service) ?? [])].sort()) {
      const cycle = visit(needed);
      if (cycle) return cycle;
    }
    path.pop();
    state.set(service, 'done');
    return undefined;
  };
  for (const service of [...graph.keys()].sort()) {
    const cycle = visit(service);
    if (cycle) return cycle;
  }
  return undefined;
}

/**
 * The services in waves: a service comes in a later wave than every service it names in
 * `after:`, directly or through services this release does not touch. Within a wave, names sorted.
 */
export function dependencyWaves(services: readonly string[], afterOf: AfterOf): string[][] {
  const graph = dependencyGraph(services, afterOf);
  const depth = new Map<string, number>();
  const depthOf = (service: string): number => {
    const known = depth.get(service);
    if (known !== undefined) return known;
    const value = Math.max(-1, ...(graph.get(service) ?? []).map(depthOf)) + 1;
    depth.set(service, value);
    return value;
  };
  const byDepth = new Map<number, string[]>();
  for (const service of new Set(services)) {
    const level = depthOf(service);
    byDepth.set(level, [...(byDepth.get(level) ?? []), service]);
  }
  return [...byDepth.keys()].sort((a, b) => a - b).map((level) => byDepth.get(level)!.sort());
}

/** `after:` as the work tree holds it (HEAD = MERGE_SHA during migrate). */
export function afterInWorkTree(repoDir: string): AfterOf {
  return (service) => (existsSync(join(repoDir, manifestPath(service))) ? readManifest(repoDir, service).after : undefined);
}

/**
 * Checks `after:` at commit `sha` from `services` on (prepare, before anything changes); `known`
 * holds the lists of manifests already parsed (undefined: no manifest at sha).
 */
export async function validateAfterAt(context: RunContext, sha: string, services: readonly string[], known: ReadonlyMap<string, readonly string[] | undefined> = new Map()): Promise<void> {
  // The manifests the caller has parsed already are not read again.
  const lists = new Map(known);
  const pending = services.filter((service) => !lists.has(service)).concat([...known.values()].flatMap((after) => after ?? []));
  // Read every manifest the graph reaches first: the graph itself is built synchronously.
  while (pending.length > 0) {
    const service = pending.pop()!;
    if (lists.has(service)) continue;
    const text = await showFile(context, sha, manifestPath(service));
    const after = text === undefined ? undefined : parseManifest(text, manifestPath(service), service).after;
    lists.set(service, after);
    pending.push(...(after ?? []));
  }
  // A service the release deletes has no manifest at sha: it needs nothing.
  const present = services.filter((service) => lists.get(service) !== undefined);
  dependencyGraph(present, (service) => lists.get(service));
}
