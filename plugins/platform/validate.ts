import { ReleaseError, type RunContext } from '../../api/index.js';
import { tappedKeys } from '../../core/index.js';
import { requireBackupPlugins } from '../backups/take.js';
import { git, showFile } from '../../shared/git/git.js';
import { parseComposeFile } from './compose-file.js';
import { rollingDeploy } from './deploy.js';
import { composePath, manifestPath, parseManifest, SERVICE_NAME, SERVICE_NAME_RULE, SERVICES_DIR } from './manifest.js';
import { validateAfterAt } from './waves.js';

/** The built-in runtimes that deploy a service from its compose file (swarm: `docker stack deploy` of it). */
const RUNTIMES_READING_COMPOSE_FILES: readonly string[] = ['compose', 'swarm'];

/**
 * Refuses (exit 2) a release whose services' files are bad at commit `sha`: a `packages/` folder
 * whose name cannot be a service, a manifest or compose file that is a symlink, does not parse or
 * does not validate. Runs in prepare, before any backup or pull, so nothing has changed yet.
 */
export async function validateServicesAt(context: RunContext, sha: string, folders: readonly string[], services: readonly string[]): Promise<void> {
  for (const folder of folders) {
    // A folder the release deletes (or renames away) need not be a valid name: it is going.
    const present = await git(context, ['ls-tree', '--name-only', '--end-of-options', sha, '--', `${SERVICES_DIR}/${folder}`]);
    if (!SERVICE_NAME.test(folder) && present !== '') {
      throw new ReleaseError('BAD_INPUT', `${SERVICES_DIR}/${folder}/: "${folder}" is not a valid service name; nothing was changed`, {
        hint: `rename the folder: a service name is ${SERVICE_NAME_RULE}`,
      });
    }
  }
  const afterLists = new Map<string, readonly string[] | undefined>();
  for (const service of services) {
    const paths = [manifestPath(service), composePath(service)];
    const listing = await git(context, ['ls-tree', '--full-tree', '--end-of-options', sha, '--', ...paths]);
    for (const line of listing.split('\n').filter(Boolean)) {
      const [mode] = line.split(' ');
      const path = line.slice(line.indexOf('\t') + 1);
      if (mode !== '100644' && mode !== '100755') {
        throw new ReleaseError('BAD_INPUT', `${path}: must be a regular file (git mode ${mode}${mode === '120000' ? ', a symlink' : ''}); nothing was changed`, {
          hint: 'commit the file itself, not a link to it',
        });
      }
    }
    const manifestText = await showFile(context, sha, manifestPath(service));
    afterLists.set(service, undefined);
    if (manifestText === undefined) continue; // the release deletes the service
    const manifest = parseManifest(manifestText, manifestPath(service), service);
    afterLists.set(service, manifest.after);
    // Before any backup starts (they run several at once): every strategy is there.
    requireBackupPlugins(context, service, manifest.backup);
    if (!context.hooks.runtime.get(manifest.runtime)?.isUsed()) {
      const provided = [...tappedKeys(context.hooks.runtime).keys()].join(', ') || 'none';
      throw new ReleaseError('BAD_INPUT', `${manifestPath(service)}: runtime: no plugin provides runtime "${manifest.runtime}" (provided: ${provided}); nothing was changed`, {
        hint: 'fix the runtime: key, or register the plugin that provides it in release.config.ts',
      });
    }
    const composeText = await showFile(context, sha, composePath(service));
    if (composeText !== undefined) {
      const compose = parseComposeFile(composeText, composePath(service));
      try {
        rollingDeploy(service, manifest, composeText, compose);
      } catch (error) {
        if (!(error instanceof ReleaseError)) throw error;
        throw new ReleaseError(error.code, `${error.message}; nothing was changed`, { hint: error.hint, reason: error.reason });
      }
    } else if (RUNTIMES_READING_COMPOSE_FILES.includes(manifest.runtime)) {
      throw new ReleaseError('BAD_INPUT', `${composePath(service)} does not exist, but ${manifestPath(service)} deploys ${service} with ${manifest.runtime}; nothing was changed`, {
        hint: 'add the compose file, or set runtime: none in the manifest for a service this host does not run',
      });
    }
  }
  // The order migrate applies them in: an unknown name or a cycle in after: is refused here.
  await validateAfterAt(context, sha, services, afterLists);
}
