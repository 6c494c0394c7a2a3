/**
 * Turns a service's compose file, as compose itself rendered it (`config`: variables such as
 * ${IMAGE} substituted, relative paths made absolute), into the stack file `docker stack deploy`
 * reads. Pure: no engine, no files.
 */
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { ReleaseError } from '../../api/index.js';

/** The label each swarm service carries: the hash of what the orchestrator applied. */
export const FINGERPRINT_LABEL = 'io.release-orchestrator.fingerprint';
/** The container label that carries the mounted files' hash: a changed file replaces the tasks. */
export const MOUNTS_LABEL = 'io.release-orchestrator.mounts';

export type PublishMode = 'host' | 'ingress';

export interface RenderOptions {
  /** How a port written `"HOST:CONTAINER"` is published: `host` binds it on the node running the task. */
  publishMode: PublishMode;
  fingerprint: string;
  /** The hash of the files the services mount (bind mounts, env files); empty when none. */
  mounts: string;
  /** Make the stack's default network an attachable overlay, for a container outside the stack (the edge proxy). */
  attachable?: boolean;
  /** Where the rendered text came from, for messages. */
  file: string;
  /**
   * The compose file as written (before compose rendered it). Compose v2 writes every port in
   * the long syntax with `mode: ingress`, so only the source tells a short-syntax port (published
   * in `publishMode`) from one whose `mode:` the operator chose.
   */
  source?: string;
}

export interface RenderedStack {
  text: string;
  /** The compose services, i.e. the swarm services `<stack>_<name>`. */
  services: string[];
  /** Per service, the update order chosen and why, for the operator. */
  notes: string[];
}

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

interface PortSpec {
  target: number;
  published?: number;
  protocol: string;
  mode: string;
}

/**
 * Per service, the `mode:` each port of the source file names (undefined: short syntax or no
 * mode), in the file's order; a service is absent when its ports cannot be matched one to one.
 */
function sourcePortModes(source: string | undefined): Map<string, (string | undefined)[]> {
  const modes = new Map<string, (string | undefined)[]>();
  if (source === undefined) return modes;
  let doc: unknown;
  try {
    doc = parseYaml(source);
  } catch {
    return modes;
  }
  if (!isRecord(doc) || !isRecord(doc.services)) return modes;
  for (const [name, service] of Object.entries(doc.services)) {
    if (!isRecord(service) || service.extends !== undefined) continue;
    const ports = Array.isArray(service.ports) ? service.ports : [];
    modes.set(name, ports.map((port) => (isRecord(port) && typeof port.mode === 'string' ? port.mode : undefined)));
  }
  return modes;
}

/**
 * `[IP:]PUBLISHED:TARGET[/PROTO]` or `TARGET[/PROTO]`, or compose's long syntax; a host IP has no
 * meaning in swarm (ports bind on every address). `written` is the mode the source file names for
 * it (undefined: short syntax), or null when the source cannot be matched port by port (then only
 * a rendered `mode: host` is taken as written: compose v2 renders every port `mode: ingress`).
 */
function parsePort(entry: unknown, publishMode: PublishMode, where: string, written: string | undefined | null): PortSpec {
  if (isRecord(entry)) {
    const rendered = typeof entry.mode === 'string' ? entry.mode : undefined;
    return {
      ...(entry as object),
      target: Number(entry.target),
      ...(entry.published !== undefined ? { published: Number(entry.published) } : {}),
      protocol: typeof entry.protocol === 'string' ? entry.protocol : 'tcp',
      mode: (written === null ? (rendered === 'host' ? rendered : undefined) : written) ?? publishMode,
    };
  }
  const text = String(entry);
  const match = /^(?:(?:\d+\.[0-9.]+|\[[0-9a-fA-F:]+\]):)?(?:(\d+):)?(\d+)(?:\/(tcp|udp|sctp))?$/.exec(text);
  if (!match) {
    throw new ReleaseError('BAD_INPUT', `${where}: port "${text}" is not HOST:CONTAINER[/PROTOCOL]; swarm publishes single ports, not ranges`, {
      hint: 'write it as "8080:80", or in the long syntax { target: 80, published: 8080, mode: host }',
    });
  }
  return { target: Number(match[2]), ...(match[1] ? { published: Number(match[1]) } : {}), protocol: match[3] ?? 'tcp', mode: publishMode };
}

/**
 * The stack file: every service gets rolling updates gated on its health check (`order:
 * start-first`, `failure_action: rollback`) and the fingerprint label. A service that publishes a
 * host-mode port updates `stop-first`: one node binds a host port for one task only, so a new task
 * started first would wait for the port forever.
 */
export function renderStack(renderedCompose: string, options: RenderOptions): RenderedStack {
  const doc: unknown = parseYaml(renderedCompose);
  if (!isRecord(doc) || !isRecord(doc.services)) {
    throw new ReleaseError('BAD_INPUT', `${options.file}: no services: in the rendered compose file`, { hint: 'give the compose file a services: map' });
  }
  const notes: string[] = [];
  const written = sourcePortModes(options.source);
  for (const [name, raw] of Object.entries(doc.services)) {
    if (!isRecord(raw)) continue;
    const service = raw;
    // Swarm runs images; building is the release's job before the deploy (and warns otherwise).
    delete service.build;
    delete service.container_name;
    const rawPorts: unknown[] = Array.isArray(service.ports) ? service.ports : [];
    const modes = written.get(name);
    const known = modes !== undefined && modes.length === rawPorts.length;
    const ports = rawPorts.map((port, index) => parsePort(port, options.publishMode, `${options.file}: services.${name}.ports`, known ? modes[index] : null));
    if (ports.length > 0) service.ports = ports;
    const hostPorts = ports.filter((port) => port.mode === 'host' && port.published !== undefined);
    const deploy = isRecord(service.deploy) ? service.deploy : {};
    const order = hostPorts.length > 0 ? 'stop-first' : 'start-first';
    deploy.update_config = { parallelism: 1, order, failure_action: 'rollback', ...(isRecord(deploy.update_config) ? deploy.update_config : {}) };
    deploy.rollback_config = { parallelism: 1, order, ...(isRecord(deploy.rollback_config) ? deploy.rollback_config : {}) };
    deploy.labels = { ...(isRecord(deploy.labels) ? deploy.labels : {}), [FINGERPRINT_LABEL]: options.fingerprint };
    service.deploy = deploy;
    if (options.mounts) {
      const labels = service.labels;
      if (Array.isArray(labels)) labels.push(`${MOUNTS_LABEL}=${options.mounts}`);
      else service.labels = { ...(isRecord(labels) ? labels : {}), [MOUNTS_LABEL]: options.mounts };
    }
    const chosen = (deploy.update_config as Record<string, unknown>).order;
    const healthcheck = isRecord(service.healthcheck) && service.healthcheck.disable !== true;
    notes.push(`${name}: updates ${String(chosen)}${hostPorts.length > 0 && chosen === 'stop-first' ? ` (host-mode port ${hostPorts.map((p) => p.published).join(', ')})` : ''}${healthcheck ? ', gated on its healthcheck' : ', no healthcheck: updates are gated on the task starting only'}`);
  }
  doc.version ??= '3.9';
  if (options.attachable) {
    const networks = isRecord(doc.networks) ? doc.networks : {};
    networks.default = { driver: 'overlay', ...(isRecord(networks.default) ? networks.default : {}), attachable: true };
    doc.networks = networks;
  }
  // Compose's own top-level `name:` (newer renders) is not a stack file key.
  delete doc.name;
  return { text: stringifyYaml(doc), services: Object.keys(doc.services).sort(), notes };
}

/**
 * `registry.example:5000/team/app:1.2` -> { path: team/app, tag: 1.2 }: the name an image gets in
 * another registry (the release's), which keeps its path and tag.
 */
export function imagePath(image: string): { path: string; tag: string } {
  const withoutDigest = image.split('@')[0]!;
  const slash = withoutDigest.indexOf('/');
  const first = slash < 0 ? '' : withoutDigest.slice(0, slash);
  const rest = first.includes('.') || first.includes(':') || first === 'localhost' ? withoutDigest.slice(slash + 1) : withoutDigest;
  const colon = rest.lastIndexOf(':');
  return colon < 0 ? { path: rest, tag: 'latest' } : { path: rest.slice(0, colon), tag: rest.slice(colon + 1) };
}
