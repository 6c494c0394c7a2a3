/** The docker command lines of the edge proxy, as data (run by shared/docker/command.ts). */
import type { DockerCommand } from '../docker/command.js';

/** HAProxy's runtime API inside the container, and the port it serves on. */
export const ADMIN_PORT = 9999;
export const INSIDE_PORT = 8080;
/** Labels on the proxy container: the service it fronts, and the fingerprint of its configuration. */
export const LABEL_OWNER = 'release-orchestrator.edge-proxy.owner';
export const LABEL_CONFIG = 'release-orchestrator.edge-proxy.config';

const docker = (args: string[]): DockerCommand => ({ file: 'docker', args, deadlineKind: 'docker' });

/** What a proxy container is started with. Its whole configuration travels in an environment variable: it holds no secret. */
export interface ProxyContainer {
  name: string;
  owner: string;
  network: string;
  listen: { host: string; port: number };
  image: string;
  config: string;
  fingerprint: string;
}

export const edgeProxyCommands = {
  /** `STATE\tFINGERPRINT` of the proxy container. */
  status: (name: string) => docker(['inspect', '--format', `{{.State.Status}}\t{{index .Config.Labels "${LABEL_CONFIG}"}}`, name]),
  /** SIGUSR1 stops HAProxy softly: the connections in flight finish first. */
  run: (proxy: ProxyContainer) => docker(['run', '--detach', '--name', proxy.name, '--restart', 'unless-stopped',
    '--network', proxy.network, '--stop-signal', 'SIGUSR1', '--publish', `${proxy.listen.host}:${proxy.listen.port}:${INSIDE_PORT}`,
    '--label', `${LABEL_OWNER}=${proxy.owner}`, '--label', `${LABEL_CONFIG}=${proxy.fingerprint}`,
    '--env', `HAPROXY_CONFIG=${proxy.config}`, proxy.image]),
  /** One command on the runtime API, through bash's /dev/tcp (the image has no socat). */
  admin: (name: string, command: string) => docker(['exec', name, 'bash', '-c',
    `exec 3<>/dev/tcp/127.0.0.1/${ADMIN_PORT} && printf '%s\\n' "$1" >&3 && cat <&3`, 'admin', command]),
  /** A container's address on one network. */
  addressOn: (container: string, network: string) => docker(['inspect', '--format', `{{with index .NetworkSettings.Networks "${network}"}}{{.IPAddress}}{{end}}`, container]),
};
