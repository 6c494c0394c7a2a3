/**
 * The compose command lines of the compose runtime, as data (run by shared/docker/command.ts).
 * `compose` is the command that runs compose: `["docker", "compose"]` (v2) or `["docker-compose"]` (v1).
 */
import type { DockerCommand } from '../../shared/docker/command.js';
import type { DeadlineKind } from '../deadlines/index.js';

/** One compose project: the service's compose file, and the variables compose substitutes in it. */
export interface ComposeProject {
  compose: string[];
  project: string;
  file: string;
  env: Record<string, string>;
}

function composeCommand(target: ComposeProject, args: string[], deadlineKind: DeadlineKind): DockerCommand {
  const [file, ...prefix] = target.compose;
  return { file: file!, args: [...prefix, '--project-name', target.project, '--file', target.file, ...args], deadlineKind, env: target.env };
}

/** Orphans (containers of compose services the file no longer has) are removed only by an `up` of the whole project. */
const orphansFlag = (names: string[]) => (names.length > 0 ? [] : ['--remove-orphans']);

export const composeCommands = {
  /** Answers when this compose command is installed. */
  version: (compose: string[]): DockerCommand => ({ file: compose[0]!, args: [...compose.slice(1), 'version'], deadlineKind: 'docker' }),
  build: (target: ComposeProject, services: string[] = []) => composeCommand(target, ['build', ...services], 'build'),
  /** The file as compose renders it (variables substituted, defaults filled in): what the Swarm runtime deploys. */
  config: (target: ComposeProject) => composeCommand(target, ['config'], 'docker'),
  /** Converges `names` (the whole project when empty). */
  up: (target: ComposeProject, names: string[] = []) => composeCommand(target, ['up', '-d', ...orphansFlag(names), ...names], 'compose'),
  /** Creates what has no container yet, leaving every existing container as it is. */
  upMissing: (target: ComposeProject, names: string[] = []) => composeCommand(target, ['up', '-d', ...orphansFlag(names), '--no-recreate', ...names], 'compose'),
  /** Replaces the containers of `names` even when their config is unchanged, and nothing they depend on. */
  forceRecreate: (target: ComposeProject, names: string[]) => composeCommand(target, ['up', '-d', '--no-deps', '--force-recreate', ...names], 'compose'),
  /** A rolling step: one more container of `service` beside the `running` ones, none of them touched. */
  scaleUpBeside: (target: ComposeProject, service: string, running: number) =>
    composeCommand(target, ['up', '--detach', '--no-deps', '--no-recreate', '--remove-orphans', '--scale', `${service}=${running + 1}`, service], 'compose'),
};

/**
 * The `up`s that converge `names` (all of `inScope` when empty) and replace the containers of
 * `forced` even when their config is unchanged, each container once: services without a container
 * are created first (so what the forced ones depend on exists), then the forced ones that already
 * ran are recreated alone, then the rest converge, which leaves the just-recreated ones as they are.
 */
export function upReplacingCommands(target: ComposeProject, inScope: string[], existing: ReadonlySet<string>, forced: string[] | 'all', names: string[] = []): DockerCommand[] {
  const replace = inScope.filter((name) => existing.has(name) && (forced === 'all' || forced.includes(name)));
  if (replace.length === 0) return [composeCommands.up(target, names)];
  return [
    ...(inScope.some((name) => !existing.has(name)) ? [composeCommands.upMissing(target, names)] : []),
    composeCommands.forceRecreate(target, replace),
    composeCommands.up(target, names),
  ];
}
