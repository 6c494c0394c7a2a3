/**
 * What HEAD asks of one service, as every runtime that deploys compose files reads it: the
 * manifest, the compose file (parsed, its secrets registered), the project `.env`, the build
 * contexts' and mounted files' git hashes, and the image the `${IMAGE}` services run (a built
 * image without a name is tagged by its sources, `local/<svc>:<hash>`, so a revert finds the old
 * one still there). Each runtime adds its own fingerprint and settings on top.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ReleaseError, type RunContext } from '../../api/index.js';
import { contentHash, treeHash } from './fingerprint.js';
import { IMAGE_VARIABLE, parseComposeFile, type ComposeFile } from './compose-file.js';
import { registerComposeSecrets } from './compose-secrets.js';
import { composePath, manifestPath, parseManifest, type Manifest } from './manifest.js';
import { projectEnvPath } from './interpolate.js';
import { headSha, showFile } from '../../shared/git/git.js';

export interface ServiceAtHead {
  /** The commit the files were read from by git; undefined: the work tree. */
  commit?: string;
  manifest: Manifest;
  manifestText: string;
  /** The compose file as written. */
  composeText: string;
  compose: ComposeFile;
  /** The project `.env` beside the compose file, when there is one. */
  dotenv?: string;
  /** The image the `${IMAGE}` services run. */
  image?: string;
  /** Whether that image is built here (`local/<svc>:<hash>`), not pulled. */
  built: boolean;
  /** The build contexts and the mounted files, as git object ids at HEAD. */
  contexts: string;
  mounts: string;
}

/**
 * Undefined when the service has no manifest or no compose file at HEAD. With `commit` (a dry
 * run's target, before the pull moved HEAD there) the files are read from that commit by git.
 */
export async function serviceAtHead(context: RunContext, service: string, commit?: string): Promise<ServiceAtHead | undefined> {
  const read = async (path: string) => {
    if (commit) return showFile(context, commit, path);
    const full = join(context.repoDir, path);
    return existsSync(full) ? readFileSync(full, 'utf8') : undefined;
  };
  const [manifestText, composeText, dotenv] = await Promise.all([read(manifestPath(service)), read(composePath(service)), read(projectEnvPath(composePath(service)))]);
  if (manifestText === undefined || composeText === undefined) return undefined;
  const manifest = parseManifest(manifestText, manifestPath(service), service);
  const compose = parseComposeFile(composeText, composePath(service));
  registerComposeSecrets(context.repoDir, compose, dotenv);
  const contexts = await treeHash(context, compose.services.flatMap((s) => (s.build ? [s.build.context, s.build.dockerfile] : [])), commit);
  const imageUsers = compose.services.filter((s) => s.image === IMAGE_VARIABLE);
  let image = manifest.image;
  let built = false;
  if (!image && imageUsers.length > 0) {
    if (imageUsers.some((s) => !s.build)) {
      throw new ReleaseError('BAD_INPUT', `${manifestPath(service)}: image: needed, as ${composePath(service)} runs \${IMAGE} without building it`, {
        hint: 'name the image in the manifest, or give those compose services a build:',
      });
    }
    image = `local/${service}:${contexts.slice(0, 12)}`;
    built = true;
  }
  const mounts = await treeHash(context, [...new Set(compose.services.flatMap((s) => s.mounts))], commit);
  return { commit, manifest, manifestText, composeText, compose, dotenv, image, built, contexts, mounts };
}

/**
 * The hash of what was applied from the repo's files: the manifest, the compose file, the `.env`
 * when there is one (a service without one keeps the fingerprint it had), the files the compose
 * file reads as part of itself, and whatever a runtime adds (`extra`).
 */
export async function filesFingerprint(context: RunContext, head: ServiceAtHead, ...extra: string[]): Promise<string> {
  return contentHash(head.manifestText, head.composeText, ...extra, ...(head.dotenv === undefined ? [] : [head.dotenv]),
    ...(head.compose.sources.length === 0 ? [] : [await treeHash(context, head.compose.sources, head.commit)]));
}

/**
 * The commit a dry run previews: the release's MERGE_SHA while HEAD is still before it (a dry run
 * does not pull); undefined when HEAD is the target, and the work tree is read.
 */
export async function previewCommit(context: RunContext): Promise<string | undefined> {
  const target = context.state?.mergeSha;
  if (!context.dryRun || !target) return undefined;
  return target === (await headSha(context)) ? undefined : target;
}

/**
 * A service's `hooks:` as a tree holds them: `commit` (read by git), or else the work tree, or in
 * a dry run the commit it previews (the tree being released). None when it has no manifest there.
 */
export async function manifestHooks(context: RunContext, service: string, commit?: string): Promise<Manifest['hooks']> {
  const at = commit ?? (await previewCommit(context));
  const path = manifestPath(service);
  const full = join(context.repoDir, path);
  const text = at ? await showFile(context, at, path) : existsSync(full) ? readFileSync(full, 'utf8') : undefined;
  return text === undefined ? undefined : parseManifest(text, path, service).hooks;
}
