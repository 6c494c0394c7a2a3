import { ReleaseError, type RunContext } from '../../api/index.js';
import { engineDownReason } from '../../shared/docker/engine-down.js';
import { dockerCommands, runDocker, type DockerCommand } from '../../shared/docker/command.js';
import { composeCommands, type ComposeProject } from './commands.js';

/** One container of a compose project, as `docker ps` shows it. */
export interface ContainerInfo {
  id: string;
  name: string;
  image: string;
  state: string;
  /** The compose service it runs (compose's own label). */
  composeService: string;
}

/** The host's pin of the compose command, e.g. `docker-compose`: below the config's `command` option. */
export const COMPOSE_COMMAND_VARIABLE = 'RELEASE_COMPOSE_COMMAND';

/**
 * The docker and compose commands the runtime needs. Compose v2 (`docker compose`) and v1
 * (`docker-compose`) are both supported. Which one runs: the config's `command` option; else
 * RELEASE_COMPOSE_COMMAND from the environment (a host property: the platform repo is shared by
 * hosts that may differ); else the first that answers, v2 first.
 */
export class ComposeCli {
  private detected?: Promise<string[]>;

  constructor(private readonly configured?: string[]) {}

  command(context: RunContext): Promise<string[]> {
    if (this.configured) return Promise.resolve(this.configured);
    const pinned = process.env[COMPOSE_COMMAND_VARIABLE]?.trim().split(/\s+/).filter(Boolean);
    if (pinned && pinned.length > 0) return Promise.resolve(pinned);
    this.detected ??= (async () => {
      for (const candidate of [['docker', 'compose'], ['docker-compose']]) {
        if ((await runDocker(context, composeCommands.version(candidate))).exitCode === 0) return candidate;
      }
      throw new ReleaseError('BAD_INPUT', 'neither `docker compose` nor `docker-compose` answers', {
        hint: 'install one (apt-get install docker-compose), or set the command in the runtime-compose options',
      });
    })();
    return this.detected;
  }

  /** A service's compose project, with the compose command of this host. */
  async project(context: RunContext, project: string, file: string, env: Record<string, string>): Promise<ComposeProject> {
    return { compose: await this.command(context), project, file, env };
  }

  /** A compose command, its output shown as details as it runs. */
  run(context: RunContext, command: DockerCommand) {
    return runDocker(context, command, { onLine: (line) => context.out.detail(line) });
  }

  /**
   * Why the engine cannot be used, when it does not answer (stopped, restarting, hung); undefined
   * when it answers. Asked after a compose command failed, so the error names the real cause.
   */
  async engineDown(context: RunContext): Promise<string | undefined> {
    try {
      // Plain `docker version`: a --format template fails on a 20.10 client without a server, and
      // its template error would hide the client's own "Cannot connect" line.
      const version = await runDocker(context, dockerCommands.version(), { deadlineMs: 10_000, deadlineName: 'docker' });
      if (version.exitCode === 0) return undefined;
      return version.stderr.split('\n').map((line) => line.trim()).filter(Boolean).pop() ?? `docker version exited ${version.exitCode}`;
    } catch {
      return 'docker version got no answer within 10s';
    }
  }

  /** A docker command that must succeed: its stdout. */
  async docker(context: RunContext, command: DockerCommand) {
    const result = await runDocker(context, command);
    if (result.exitCode !== 0) {
      throw new ReleaseError('PHASE_FAILED', `docker ${command.args[0]} failed: ${result.stderr.split('\n').filter(Boolean).pop() ?? `exit ${result.exitCode}`}`, {
        hint: 'is the Docker engine running? (docker info)', reason: engineDownReason(result.stderr),
      });
    }
    return result.stdout;
  }

  /** Every container of the project, running or not; found by compose's own project label. */
  async containers(context: RunContext, project: string): Promise<ContainerInfo[]> {
    const out = await this.docker(context, dockerCommands.projectContainers(project));
    return out.split('\n').filter(Boolean).map((line) => {
      const [id, name, image, state, composeService] = line.split('\t') as [string, string, string, string, string];
      return { id, name, image, state, composeService };
    }).sort((a, b) => a.name.localeCompare(b.name));
  }
}
