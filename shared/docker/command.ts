/**
 * Docker, compose and stack commands as data. Each runtime builds its command lines in its own
 * `commands.ts` (pure functions, unit-tested argument by argument for compose v1 and v2), and runs
 * them here, so a dry run can print exactly what a real run would execute.
 */
import type { ExecOptions, ExecResult, RunContext } from '../../api/index.js';
import { shellQuote } from '../../core/commands.js';
import { deadline, type DeadlineKind } from '../../plugins/deadlines/index.js';

export interface DockerCommand {
  /** The program: `docker`, or compose v1's `docker-compose`. */
  file: string;
  args: string[];
  /**
   * The deadline that bounds it. Absent: the scope's (withDeadline), so the `docker exec` of a
   * backup is bounded by the backup's deadline and a drift query by the docker one.
   */
  deadlineKind?: DeadlineKind;
  /** Variables compose substitutes (`${IMAGE}`, the manifest's env); never a secret. */
  env?: Record<string, string>;
}

/** What a command may add when it runs: streams, a line callback, a caller's own deadline. */
export type RunOptions = Omit<ExecOptions, 'env'>;

/** The one place a runtime runs a docker command. */
export function runDocker(context: RunContext, command: DockerCommand, options: RunOptions = {}): Promise<ExecResult> {
  const bound = command.deadlineKind && options.deadlineMs === undefined ? deadline(context, command.deadlineKind) : {};
  return context.exec(command.file, command.args, { ...bound, ...options, ...(command.env ? { env: command.env } : {}) });
}

/** The command as a shell line to paste: `IMAGE=local/web:2 docker compose --project-name web ...`. */
export function dockerCommandLine(command: DockerCommand): string {
  const env = Object.entries(command.env ?? {}).map(([key, value]) => `${key}=${shellQuote(value)}`);
  return [...env, command.file, ...command.args.map(shellQuote)].join(' ');
}

/** The label compose puts on everything of a project (containers, networks). */
export const COMPOSE_PROJECT_LABEL = 'com.docker.compose.project';

const docker = (args: string[]): DockerCommand => ({ file: 'docker', args, deadlineKind: 'docker' });

/** How `docker exec` runs a command in a container: its own user and environment, stdin when it is fed. */
export interface ExecInCommand {
  container: string;
  argv: string[];
  user?: string;
  env?: Record<string, string>;
  /** Keep stdin open (-i): the command reads a stream or a given input. */
  interactive?: boolean;
}

/** The engine-level docker commands every runtime uses. */
export const dockerCommands = {
  /** The engine answers: plain `docker version` (a --format template fails on a 20.10 client without a server). */
  version: () => docker(['version']),
  /** Every container of a compose project, running or not, one tab-separated line each. */
  projectContainers: (project: string) => docker(['ps', '--all', '--no-trunc', '--filter', `label=${COMPOSE_PROJECT_LABEL}=${project}`,
    '--format', '{{.ID}}\t{{.Names}}\t{{.Image}}\t{{.State}}\t{{.Label "com.docker.compose.service"}}']),
  projectNetworks: (project: string) => docker(['network', 'ls', '--quiet', '--filter', `label=${COMPOSE_PROJECT_LABEL}=${project}`]),
  imageId: (image: string) => docker(['image', 'inspect', '--format', '{{.Id}}', image]),
  /** A volume's driver, options and Mountpoint, as one JSON object. */
  volumeInspect: (volume: string) => docker(['volume', 'inspect', '--format', '{{json .}}', volume]),
  volumeNames: () => docker(['volume', 'ls', '--quiet']),
  /**
   * A volume of `project`, named as compose names it (`<project>_<name>`): labelled as compose
   * labels its own, so a later `compose up` takes it as the project's instead of refusing it.
   */
  createProjectVolume: (project: string, volume: string) => {
    const prefix = `${project}_`;
    const labels = volume.startsWith(prefix) && volume.length > prefix.length
      ? ['--label', `${COMPOSE_PROJECT_LABEL}=${project}`, '--label', `com.docker.compose.volume=${volume.slice(prefix.length)}`]
      : [];
    return docker(['volume', 'create', ...labels, volume]);
  },
  containerState: (container: string) => docker(['inspect', '--format', '{{.State.Status}}', container]),
  logTail: (container: string, lines = 5) => docker(['logs', '--tail', String(lines), container]),
  stop: (containers: string[]) => docker(['stop', ...containers]),
  start: (containers: string[]) => docker(['start', ...containers]),
  remove: (containers: string[]) => docker(['rm', '--force', ...containers]),
  removeNetworks: (networks: string[]) => docker(['network', 'rm', ...networks]),
  /** No deadline kind of its own: the caller's (a backup's), else the scope's. */
  execIn: (request: ExecInCommand): DockerCommand => ({ file: 'docker', args: ['exec', ...(request.interactive ? ['-i'] : []), ...(request.user ? ['--user', request.user] : []),
    ...Object.entries(request.env ?? {}).flatMap(([key, value]) => ['--env', `${key}=${value}`]), request.container, ...request.argv] }),
};

const MANAGEMENT_COMMANDS = new Set(['service', 'stack', 'network', 'image', 'container', 'volume', 'node', 'swarm', 'compose']);

/** What a command is, for an error: `docker service scale`, `docker stop`. */
export function dockerSubcommand(command: DockerCommand): string {
  const [first, second] = command.args;
  return [command.file, first, ...(first && MANAGEMENT_COMMANDS.has(first) && second ? [second] : [])].join(' ');
}
