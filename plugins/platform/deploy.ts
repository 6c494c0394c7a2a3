import { parse as parseYaml } from 'yaml';
import { ReleaseError } from '../../api/index.js';
import { IMAGE_VARIABLE, type ComposeFile } from './compose-file.js';
import { composePath, manifestPath, parseDuration, type Manifest } from './manifest.js';

/** What `deploy: { strategy: rolling }` asks for, with its defaults filled in from the manifest and compose file. */
export interface RollingDeploy {
  /** The compose service behind the proxy. */
  target: string;
  /** The port it listens on inside its containers. */
  port: number;
  /** Where the proxy listens. */
  listen: { host: string; port: number };
  checkPath: string;
  /** How long a new container has to pass the health check. */
  timeoutMs: number;
  drainMs: number;
}

function badInput(service: string, message: string, hint: string): never {
  throw new ReleaseError('BAD_INPUT', `${manifestPath(service)}: deploy: ${message}`, { hint });
}

/**
 * undefined for a service released the default way; throws BAD_INPUT (naming the file and key)
 * when the manifest and compose file cannot run side by side behind a proxy.
 */
export function rollingDeploy(service: string, manifest: Manifest, composeText: string, compose: ComposeFile): RollingDeploy | undefined {
  const deploy = manifest.deploy;
  if (deploy?.strategy !== 'rolling') return undefined;
  const imageUsers = compose.services.filter((s) => s.image === IMAGE_VARIABLE).map((s) => s.name);
  const target = deploy.service ?? (imageUsers.length === 1 ? imageUsers[0]! : undefined);
  if (!target) {
    badInput(service, `service: needed, as ${composePath(service)} has ${imageUsers.length === 0 ? 'no service running ${IMAGE}' : `several services running \${IMAGE} (${imageUsers.join(', ')})`}`,
      'name the compose service the proxy sends requests to');
  }
  if (!compose.services.some((s) => s.name === target)) {
    badInput(service, `service: ${target} is not a service of ${composePath(service)}`, `one of: ${compose.services.map((s) => s.name).join(', ')}`);
  }
  // Two containers of the target run side by side during a rollout: neither may hold a fixed host port or name.
  const raw = parseYaml(composeText) as { services?: Record<string, Record<string, unknown> | null> };
  const body = raw.services?.[target] ?? {};
  for (const key of ['ports', 'container_name'] as const) {
    if (body[key] !== undefined) {
      throw new ReleaseError('BAD_INPUT', `${composePath(service)}: services.${target}.${key}: not possible with a rolling deploy (two containers run side by side)`, {
        hint: key === 'ports' ? `remove it: the edge proxy listens on ${manifestPath(service)}'s deploy.listen (or its health URL)` : 'remove it: compose names the containers',
      });
    }
  }
  let listen = deploy.listen;
  if (!listen && manifest.health) {
    const url = new URL(manifest.health.url);
    listen = `${url.hostname}:${url.port || (url.protocol === 'https:' ? '443' : '80')}`;
  }
  if (!listen) badInput(service, 'listen: needed when the manifest has no health: url', 'e.g. listen: 127.0.0.1:18080');
  const at = listen.lastIndexOf(':');
  return {
    target,
    port: deploy.port,
    listen: { host: listen.slice(0, at), port: Number(listen.slice(at + 1)) },
    checkPath: deploy.check ?? manifest.health?.endpoint ?? '/',
    timeoutMs: parseDuration(manifest.health?.timeout ?? '60s'),
    drainMs: parseDuration(deploy.drain),
  };
}
