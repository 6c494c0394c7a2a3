/**
 * The docker stack and service command lines of the Swarm runtime, as data (run by
 * shared/docker/command.ts). Rendering and building go through compose (../runtime-compose/commands.ts).
 */
import type { DockerCommand } from '../../shared/docker/command.js';
import type { DeadlineKind } from '../deadlines/index.js';

/** The label Swarm puts on every service, task and network of a stack. */
export const STACK_LABEL = 'com.docker.stack.namespace';

const docker = (args: string[], deadlineKind: DeadlineKind = 'docker'): DockerCommand => ({ file: 'docker', args, deadlineKind });

export const swarmCommands = {
  stackServiceIds: (stack: string) => docker(['service', 'ls', '--quiet', '--filter', `label=${STACK_LABEL}=${stack}`]),
  inspectServices: (ids: string[]) => docker(['service', 'inspect', ...ids]),
  /** `NAME\tRUNNING/DESIRED` per service of the stack. */
  stackReplicas: (stack: string) => docker(['service', 'ls', '--filter', `label=${STACK_LABEL}=${stack}`, '--format', '{{.Name}}\t{{.Replicas}}']),
  /** The running task containers of a swarm service on this node. */
  localTasks: (serviceName: string) => docker(['ps', '--quiet', '--no-trunc', '--filter', `label=com.docker.swarm.service.name=${serviceName}`, '--filter', 'status=running']),
  stackContainers: (stack: string) => docker(['ps', '--all', '--quiet', '--filter', `label=${STACK_LABEL}=${stack}`]),
  stackNetworks: (stack: string) => docker(['network', 'ls', '--quiet', '--filter', `label=${STACK_LABEL}=${stack}`]),
  repoDigests: (image: string) => docker(['image', 'inspect', '--format', '{{json .RepoDigests}}', image]),
  tag: (image: string, target: string) => docker(['tag', image, target]),
  push: (target: string) => docker(['push', target], 'build'),
  /**
   * The stack as rendered (`--prune`: services the file dropped go; `--resolve-image never`: the
   * reference in the file is what runs, a digest when a registry is used).
   */
  stackDeploy: (stackFile: string, stack: string) => docker(['stack', 'deploy', '--compose-file', stackFile, '--prune', '--resolve-image', 'never', '--with-registry-auth', stack], 'compose'),
  stackRemove: (stack: string) => docker(['stack', 'rm', stack]),
  /** The states of a service's tasks that are meant to be gone (a start-first update's old task). */
  shutdownTaskStates: (serviceName: string) => docker(['service', 'ps', '--filter', 'desired-state=shutdown', '--format', '{{.CurrentState}}', serviceName]),
  taskErrors: (serviceName: string) => docker(['service', 'ps', '--no-trunc', '--format', '{{.Name}} {{.Image}} {{.CurrentState}} {{.Error}}', serviceName]),
  /** Without the CLI's own wait (5 s of "verifying" per call): the runtime watches the tasks itself. */
  scale: (counts: ReadonlyMap<string, number>) => docker(['service', 'scale', '--detach', ...[...counts].map(([name, count]) => `${name}=${count}`)]),
};
