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
import { composePath, manifestPath, readManifest, readProjectEnv, type Manifest } from './manifest.js';

export interface ServiceAtHead {
  manifest: Manifest;
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

/** Undefined when the service has no manifest or no compose file at HEAD. */
export async function serviceAtHead(context: RunContext, service: string): Promise<ServiceAtHead | undefined> {
  const file = join(context.repoDir, composePath(service));
  if (!existsSync(join(context.repoDir, manifestPath(service))) || !existsSync(file)) return undefined;
  const manifest = readManifest(context.repoDir, service);
  const composeText = readFileSync(file, 'utf8');
  const compose = parseComposeFile(composeText, composePath(service));
  const dotenv = readProjectEnv(context.repoDir, service);
  registerComposeSecrets(context.repoDir, compose, dotenv);
  const contexts = await treeHash(context, compose.services.flatMap((s) => (s.build ? [s.build.context, s.build.dockerfile] : [])));
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
  const mounts = await treeHash(context, [...new Set(compose.services.flatMap((s) => s.mounts))]);
  return { manifest, composeText, compose, dotenv, image, built, contexts, mounts };
}

/**
 * The hash of what was applied from the repo's files: the manifest, the compose file, the `.env`
 * when there is one (a service without one keeps the fingerprint it had), the files the compose
 * file reads as part of itself, and whatever a runtime adds (`extra`).
 */
export async function filesFingerprint(context: RunContext, service: string, head: ServiceAtHead, ...extra: string[]): Promise<string> {
  return contentHash(readFileSync(join(context.repoDir, manifestPath(service))), head.composeText, ...extra, ...(head.dotenv === undefined ? [] : [head.dotenv]),
    ...(head.compose.sources.length === 0 ? [] : [await treeHash(context, head.compose.sources)]));
}
