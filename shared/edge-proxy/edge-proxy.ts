import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { ReleaseError, z, type RunContext } from '../../api/index.js';
import { engineDownReason } from '../docker/engine-down.js';
import { dockerCommands, dockerSubcommand, runDocker, type DockerCommand } from '../docker/command.js';
import { ADMIN_PORT, INSIDE_PORT, edgeProxyCommands } from './commands.js';

/**
 * An edge proxy for zero-downtime releases: HAProxy (Debian's package, image built by
 * scripts/build-edge-proxy-image.sh) in a container on the backends' Docker network, published
 * on the service's address. It finds its backends through Docker's DNS (127.0.0.11): every
 * container answering to `backendHost` on that network fills a server slot once its health check
 * passes, so a container started beside the old one joins without a config change or reload, and
 * one that is gone leaves by itself. The runtime API (admin socket inside the container) tells
 * which backends are up and drains one before its container is stopped.
 *
 * Runtime-neutral: compose fronts a project's service on `<project>_default`; Swarm fronts a
 * stack's tasks (`tasks.<service>`) on an attachable overlay network.
 */

export const DEFAULT_EDGE_PROXY_IMAGE = 'local/edge-haproxy:bookworm';

/** The proxy container of a service, whichever runtime runs it: one per service, named after it. */
export const proxyName = (service: string) => `${service}-edge-proxy`;
/** The build script that makes the default image, named in errors by its absolute path (pasted anywhere). */
export const EDGE_PROXY_IMAGE_SCRIPT = fileURLToPath(new URL('../../../scripts/build-edge-proxy-image.sh', import.meta.url));

export const edgeProxyOptionsSchema = z.strictObject({
  /** The HAProxy image; its CMD writes $HAPROXY_CONFIG to a file and runs `haproxy -W -db`. */
  image: z.string().min(1).default(DEFAULT_EDGE_PROXY_IMAGE),
  /** Pause between two health checks of a backend; `rise`/`fall` checks in a row change its state. */
  checkIntervalMs: z.number().int().positive().default(500),
  rise: z.number().int().positive().default(2),
  fall: z.number().int().positive().default(2),
  /** Server slots: the most backends the proxy follows at once (old and new during a rollout). */
  slots: z.number().int().min(2).max(64).default(8),
  /** How often the proxy asks Docker's DNS for the backends. */
  resolveEveryMs: z.number().int().positive().default(500),
  /**
   * One request's limits at the proxy. A connect is retried on another backend past this: a new
   * container that DNS already gives while its network is not up yet swallows the SYN, and a
   * client should not wait seconds for that (a backend on the host's network answers in < 1 ms).
   */
  connectTimeoutMs: z.number().int().positive().default(500),
  requestTimeoutMs: z.number().int().positive().default(30_000),
});
export type EdgeProxyOptions = z.input<typeof edgeProxyOptionsSchema>;

/** What one proxy fronts. */
export interface EdgeProxySpec {
  /** The proxy container's name. */
  name: string;
  /** Who owns it (e.g. the released service), kept as a label. */
  owner: string;
  /** The Docker network the backends are on; the proxy joins it. */
  network: string;
  /** The DNS name that resolves to every backend on that network (a compose service, `tasks.<svc>`). */
  backendHost: string;
  backendPort: number;
  /** The health check of a backend: GET this path, expect 2xx. */
  checkPath: string;
  /** Where the proxy listens on the host. */
  listen: { host: string; port: number };
}

/** One server slot as the proxy sees it. */
export interface BackendState {
  slot: string;
  address: string;
  /** `up` receives requests; `draining` finishes its requests and takes no new ones. */
  state: 'up' | 'down' | 'draining' | 'maintenance';
  sessions: number;
}

const BACKEND = 'backends';

/** The runtime map that holds a maintenance message (`text`, and `html` escaped), base64. */
const MAINTENANCE_MAP = '/dev/null';
/** What a client in maintenance is told to wait before it asks again, in seconds. */
export const MAINTENANCE_RETRY_AFTER_S = 30;
const MAINTENANCE_PAGE = `<!doctype html><html><head><meta charset=utf-8><title>Down for maintenance</title></head><body><h1>Down for maintenance</h1><p>%[str(html),map(${MAINTENANCE_MAP}),b64dec]</p></body></html>`;

const escapeHtml = (text: string) => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
const base64 = (text: string) => Buffer.from(text, 'utf8').toString('base64');

/** The HAProxy configuration for `spec`: static; the backends come and go through DNS. */
export function renderHaproxyConfig(spec: EdgeProxySpec, rawOptions: EdgeProxyOptions = {}): string {
  const options = edgeProxyOptionsSchema.parse(rawOptions);
  const ms = (value: number) => `${value}ms`;
  return [
    'global',
    `  stats socket ipv4@127.0.0.1:${ADMIN_PORT} level admin`,
    '  stats timeout 1m',
    // Failed, retried and redispatched requests only, on the container's output (docker logs).
    '  log stdout format raw local0 info',
    '',
    'resolvers docker',
    '  nameserver dns 127.0.0.11:53',
    '  accepted_payload_size 8192',
    '  resolve_retries 3',
    `  timeout resolve ${ms(options.resolveEveryMs)}`,
    `  timeout retry ${ms(options.resolveEveryMs)}`,
    // A backend missing from one answer is dropped after this: a stopped container leaves quickly.
    '  hold obsolete 1s',
    '  hold valid 1s',
    '  hold nx 1s',
    '  hold other 1s',
    '  hold refused 1s',
    '  hold timeout 1s',
    '',
    'defaults',
    '  mode http',
    '  log global',
    '  option httplog',
    '  option dontlog-normal',
    `  timeout connect ${ms(options.connectTimeoutMs)}`,
    `  timeout client ${ms(options.requestTimeoutMs)}`,
    `  timeout server ${ms(options.requestTimeoutMs)}`,
    '  timeout http-keep-alive 10s',
    // A backend that went away between a check and a request costs a retry on another one, not an error.
    '  retries 3',
    '  option redispatch 1',
    '  retry-on conn-failure empty-response junk-response response-timeout 502 503 504',
    '',
    'frontend edge',
    `  bind :${INSIDE_PORT}`,
    // Maintenance: the runtime API fills this map (empty at start: /dev/null) with the message,
    // base64 so that any text passes the API's word splitting. The health checks still pass through.
    `  acl maintenance str(text),map(${MAINTENANCE_MAP}) -m found`,
    `  acl health_check path ${spec.checkPath}`,
    '  acl wants_html req.hdr(accept) -m sub text/html',
    `  http-request return status 503 content-type "text/html; charset=utf-8" hdr Retry-After ${MAINTENANCE_RETRY_AFTER_S} lf-string "${MAINTENANCE_PAGE}" if maintenance !health_check wants_html`,
    `  http-request return status 503 content-type "text/plain; charset=utf-8" hdr Retry-After ${MAINTENANCE_RETRY_AFTER_S} lf-string "%[str(text),map(${MAINTENANCE_MAP}),b64dec]" if maintenance !health_check`,
    `  default_backend ${BACKEND}`,
    '',
    `backend ${BACKEND}`,
    '  balance roundrobin',
    `  option httpchk GET ${spec.checkPath}`,
    '  http-check expect status 200-299',
    `  default-server init-addr none resolvers docker resolve-prefer ipv4 check inter ${ms(options.checkIntervalMs)} rise ${options.rise} fall ${options.fall}`,
    `  server-template b 1-${options.slots} ${spec.backendHost}:${spec.backendPort}`,
    '',
  ].join('\n');
}

export interface ServerStateLine { slot: string; address: string; opState: number; adminState: number; checkResult: number }

/** Parses `show servers state BACKEND` (a version line, a `#` header line, one line a server). */
export function parseServersState(text: string): ServerStateLine[] {
  const lines = text.split('\n').map((line) => line.trim()).filter(Boolean);
  const header = lines.find((line) => line.startsWith('#'));
  if (!header) return [];
  const names = header.slice(1).trim().split(/\s+/);
  const at = (name: string) => names.indexOf(name);
  return lines.filter((line) => !line.startsWith('#') && line.split(/\s+/).length >= names.length - 2).map((line) => {
    const fields = line.split(/\s+/);
    return {
      slot: fields[at('srv_name')]!,
      address: fields[at('srv_addr')]!,
      opState: Number(fields[at('srv_op_state')]),
      adminState: Number(fields[at('srv_admin_state')]),
      checkResult: Number(fields[at('srv_check_result')]),
    };
  });
}

/** Parses `show stat` CSV: the current sessions of each server of BACKEND. */
export function parseSessions(csv: string): Map<string, number> {
  const lines = csv.split('\n').filter(Boolean);
  const header = lines.find((line) => line.startsWith('# '));
  const sessions = new Map<string, number>();
  if (!header) return sessions;
  const names = header.slice(2).split(',');
  const proxyAt = names.indexOf('pxname');
  const serverAt = names.indexOf('svname');
  const currentAt = names.indexOf('scur');
  for (const line of lines.filter((l) => !l.startsWith('#'))) {
    const fields = line.split(',');
    if (fields[proxyAt] === BACKEND) sessions.set(fields[serverAt]!, Number(fields[currentAt]) || 0);
  }
  return sessions;
}

// HAProxy's admin-state bits (srv_admin_state): forced/inherited/config/resolution maintenance, and drain.
const MAINTENANCE_BITS = 0x01 | 0x02 | 0x04 | 0x20 | 0x40;
const DRAIN_BITS = 0x08 | 0x10;
const RUNNING = 2;
const CHECK_PASSED = 3;

/**
 * A backend that DNS just gave is running before its first check (HAProxy 2.6 has no initial
 * state): only a passed check counts as up here. Requests it gets meanwhile and cannot answer
 * are retried on another backend (`retry-on`).
 */
export function backendState(entry: ServerStateLine): BackendState['state'] {
  if (entry.adminState & MAINTENANCE_BITS) return 'maintenance';
  if (entry.adminState & DRAIN_BITS) return 'draining';
  return entry.opState === RUNNING && entry.checkResult === CHECK_PASSED ? 'up' : 'down';
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export class EdgeProxy {
  readonly options: z.infer<typeof edgeProxyOptionsSchema>;

  constructor(rawOptions: EdgeProxyOptions = {}) {
    this.options = edgeProxyOptionsSchema.parse(rawOptions);
  }

  private configOf(spec: EdgeProxySpec) {
    const config = renderHaproxyConfig(spec, this.options);
    const listen = `${spec.listen.host}:${spec.listen.port}`;
    const fingerprint = createHash('sha256').update(config).update('\0').update(this.options.image).update('\0').update(listen).update('\0').update(spec.network).digest('hex').slice(0, 16);
    return { config, fingerprint };
  }

  private async docker(context: RunContext, command: DockerCommand, what = dockerSubcommand(command)): Promise<string> {
    const result = await runDocker(context, command);
    if (result.exitCode !== 0) {
      const last = result.stderr.split('\n').filter(Boolean).pop() ?? `exit ${result.exitCode}`;
      throw new ReleaseError('PHASE_FAILED', `edge proxy: ${what} failed: ${last}`, { hint: 'is the Docker engine running? (docker info)', reason: engineDownReason(result.stderr) });
    }
    return result.stdout;
  }

  /** Whether a proxy container of that name exists, in any state. */
  async exists(context: RunContext, name: string): Promise<boolean> {
    return (await runDocker(context, edgeProxyCommands.status(name))).exitCode === 0;
  }

  /** `running`, `missing`, `stale` (built from another config), or the container's state (`exited`, ...). */
  async status(context: RunContext, spec: EdgeProxySpec): Promise<string> {
    const result = await runDocker(context, edgeProxyCommands.status(spec.name));
    if (result.exitCode !== 0) return 'missing';
    const [state, fingerprint] = result.stdout.trim().split('\t');
    if (fingerprint !== this.configOf(spec).fingerprint) return 'stale';
    return state ?? 'missing';
  }

  /**
   * The proxy's image is on this host. A runtime asks before it changes anything of a service, so
   * a host without it keeps the running version (exit 1, resumable once the image is there).
   */
  async requireImage(context: RunContext): Promise<void> {
    if ((await runDocker(context, dockerCommands.imageId(this.options.image))).exitCode === 0) return;
    throw new ReleaseError('PHASE_FAILED', `edge proxy image ${this.options.image} is not on this host; the service was not touched`, {
      hint: `build it with: bash ${EDGE_PROXY_IMAGE_SCRIPT} (or name another HAProxy image in the edgeProxy.image option)`,
    });
  }

  /**
   * Makes the proxy run as `spec` asks: kept when it already does, (re)created otherwise. A
   * recreated proxy does not listen for a moment: only a change of the proxy itself costs that.
   */
  async ensure(context: RunContext, spec: EdgeProxySpec): Promise<'kept' | 'started' | 'created'> {
    const status = await this.status(context, spec);
    if (status === 'running') return 'kept';
    if (status !== 'missing' && status !== 'stale') {
      await this.docker(context, dockerCommands.start([spec.name]), `docker start ${spec.name}`);
      await this.waitListening(context, spec);
      return 'started';
    }
    await this.requireImage(context);
    if (status === 'stale') await this.docker(context, dockerCommands.remove([spec.name]), `removing the outdated ${spec.name}`);
    const { config, fingerprint } = this.configOf(spec);
    await this.docker(context, edgeProxyCommands.run({ ...spec, image: this.options.image, config, fingerprint }), `docker run ${spec.name}`);
    await this.waitListening(context, spec);
    context.log.event('apply', 'edge-proxy-started', { service: spec.owner, proxy: spec.name, listen: `${spec.listen.host}:${spec.listen.port}` });
    return 'created';
  }

  /** Waits until the admin socket answers: the proxy has read its config and bound its ports. */
  private async waitListening(context: RunContext, spec: EdgeProxySpec): Promise<void> {
    let last = '';
    for (let i = 0; i < 50; i++) {
      const result = await this.admin(context, spec.name, 'show info', false);
      if (result.ok) return;
      last = result.text;
      await sleep(200);
    }
    const logs = await runDocker(context, dockerCommands.logTail(spec.name));
    throw new ReleaseError('PHASE_FAILED', `edge proxy ${spec.name} did not start: ${last.split('\n').filter(Boolean).pop() ?? 'no answer'}`, {
      lines: logs.output.split('\n').filter(Boolean).slice(-5), hint: `see: docker logs ${spec.name}`,
    });
  }

  /** One command on HAProxy's runtime API, through bash's /dev/tcp inside the proxy container. */
  private async admin(context: RunContext, name: string, command: string, required = true): Promise<{ ok: boolean; text: string }> {
    const result = await runDocker(context, edgeProxyCommands.admin(name, command));
    if (result.exitCode !== 0 && required) {
      throw new ReleaseError('PHASE_FAILED', `edge proxy ${name}: "${command.split(' ').slice(0, 3).join(' ')}" failed: ${result.stderr.trim().split('\n').pop() ?? `exit ${result.exitCode}`}`, {
        hint: `is it running? (docker ps --filter name=${name})`,
      });
    }
    return { ok: result.exitCode === 0, text: result.exitCode === 0 ? result.stdout : result.stderr };
  }

  /** Every server slot that has an address, with its state and current sessions. */
  async backends(context: RunContext, spec: EdgeProxySpec): Promise<BackendState[]> {
    const servers = parseServersState((await this.admin(context, spec.name, `show servers state ${BACKEND}`)).text);
    const sessions = parseSessions((await this.admin(context, spec.name, 'show stat')).text);
    return servers.filter((server) => server.address !== '-' && server.address !== '0.0.0.0')
      .map((server) => ({ slot: server.slot, address: server.address, state: backendState(server), sessions: sessions.get(server.slot) ?? 0 }));
  }

  /** A container's address on the proxy's network. */
  async addressOf(context: RunContext, spec: EdgeProxySpec, container: string): Promise<string> {
    const out = await this.docker(context, edgeProxyCommands.addressOn(container, spec.network), `docker inspect ${container}`);
    const address = out.trim();
    if (!address) throw new ReleaseError('PHASE_FAILED', `container ${container} is not on network ${spec.network}`, { hint: `docker inspect ${container}` });
    return address;
  }

  /**
   * Waits until the proxy sends requests to `address` (found through DNS, health checks passed).
   * `gone()` ends the wait early (e.g. the container exited). Progress goes to `onWaiting`.
   */
  async waitUp(context: RunContext, spec: EdgeProxySpec, address: string, deadlineMs: number,
    gone: () => Promise<string | undefined>, onWaiting?: (last: string, waitedMs: number) => void): Promise<{ up: boolean; last: string; waitedMs: number }> {
    const started = Date.now();
    let reportedAt = started;
    let last = 'not yet resolved by the proxy';
    let upInARow = 0;
    for (;;) {
      const backend = (await this.backends(context, spec)).find((b) => b.address === address);
      if (backend?.state === 'draining') {
        // Nothing drains a container it waits for: the slot this new one landed in is one an
        // earlier rollout drained and left (its container removed), so it is made ready here.
        await this.admin(context, spec.name, `set server ${BACKEND}/${backend.slot} state ready`);
        context.out.detail(`${address}: its proxy slot was left drained by an earlier rollout; made ready`);
        context.log.event('apply', 'edge-proxy-slot-readied', { service: spec.owner, backend: address });
      }
      const waitedMs = Date.now() - started;
      upInARow = backend?.state === 'up' ? upInARow + 1 : 0;
      if (upInARow >= this.options.rise) return { up: true, last: 'up', waitedMs };
      if (backend) last = `health check of ${address}:${spec.backendPort}${spec.checkPath} ${backend.state === 'down' ? 'failing' : backend.state}`;
      const why = await gone();
      if (why) return { up: false, last: why, waitedMs };
      if (waitedMs >= deadlineMs) return { up: false, last, waitedMs };
      if (onWaiting && Date.now() - reportedAt >= 5000) {
        reportedAt = Date.now();
        onWaiting(last, waitedMs);
      }
      await sleep(this.options.checkIntervalMs);
    }
  }

  /**
   * Takes `address` out of rotation: no new request goes to it, and the wait ends when its
   * requests in flight are done (or after `timeoutMs`). Its container may be stopped afterwards.
   */
  async drain(context: RunContext, spec: EdgeProxySpec, address: string, timeoutMs: number): Promise<void> {
    const backend = (await this.backends(context, spec)).find((b) => b.address === address);
    if (!backend) return;
    await this.admin(context, spec.name, `set server ${BACKEND}/${backend.slot} state drain`);
    const started = Date.now();
    while (Date.now() - started < timeoutMs) {
      const now = (await this.backends(context, spec)).find((b) => b.slot === backend.slot);
      if (!now || now.address !== address || now.sessions === 0) break;
      await sleep(100);
    }
    context.log.event('apply', 'edge-proxy-drained', { service: spec.owner, backend: address });
  }

  /**
   * Puts the proxy in maintenance with `message` (every request but the health checks answered
   * 503 with Retry-After and the message, as HTML or plain text by Accept), or out of it (undefined).
   * The page goes in before the switch, so no client sees half of it.
   */
  async setMaintenance(context: RunContext, name: string, message: string | undefined): Promise<void> {
    if (message === undefined) {
      await this.admin(context, name, `del map ${MAINTENANCE_MAP} text`, false);
      await this.admin(context, name, `clear map ${MAINTENANCE_MAP}`);
      return;
    }
    const on = (await this.maintenanceMessage(context, name)) !== undefined;
    await this.admin(context, name, `${on ? 'set' : 'add'} map ${MAINTENANCE_MAP} html ${base64(escapeHtml(message))}`);
    await this.admin(context, name, `${on ? 'set' : 'add'} map ${MAINTENANCE_MAP} text ${base64(message)}`);
  }

  /** The maintenance message the proxy answers with now; undefined when it is not in maintenance. */
  async maintenanceMessage(context: RunContext, name: string): Promise<string | undefined> {
    const { text } = await this.admin(context, name, `show map ${MAINTENANCE_MAP}`);
    const entry = text.split('\n').map((line) => line.trim().split(/\s+/)).find((words) => words[1] === 'text');
    return entry?.[2] === undefined ? undefined : Buffer.from(entry[2], 'base64').toString('utf8');
  }

  /** Removes the proxy container (nothing else: the network and backends belong to their runtime). */
  async remove(context: RunContext, name: string): Promise<boolean> {
    return (await runDocker(context, dockerCommands.remove([name]))).exitCode === 0;
  }
}
