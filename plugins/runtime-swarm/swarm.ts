import { engineDownReason } from '../../shared/docker/engine-down.js';
import { ReleaseError, type RunContext } from '../../api/index.js';
import { dockerSubcommand, runDocker, type DockerCommand } from '../../shared/docker/command.js';
import { STACK_LABEL, swarmCommands } from './commands.js';

export { STACK_LABEL } from './commands.js';

/** One swarm service of a stack, as `docker service inspect` shows it. */
export interface SwarmService {
  id: string;
  /** `<stack>_<compose service>`. */
  name: string;
  /** The compose service it runs (the name without the stack prefix). */
  part: string;
  image: string;
  labels: Record<string, string>;
  /** Desired tasks; undefined for a global service. */
  replicas?: number;
  /** The last rolling update: `updating`, `completed`, `rollback_completed`, `paused`, ...; none before the first update. */
  update?: { state: string; startedAt: string; message: string };
  /** The spec without its version, to tell whether a deploy changed anything. */
  spec: string;
}

/** A docker command that must succeed, failing with the engine's own last line. */
export async function docker(context: RunContext, command: DockerCommand, what = dockerSubcommand(command)): Promise<string> {
  const result = await runDocker(context, command);
  if (result.exitCode !== 0) {
    throw new ReleaseError('PHASE_FAILED', `${what} failed: ${result.stderr.split('\n').filter(Boolean).pop() ?? `exit ${result.exitCode}`}`, {
      hint: 'is the engine a swarm manager? (docker info --format {{.Swarm.ControlAvailable}})', reason: engineDownReason(result.stderr),
    });
  }
  return result.stdout;
}

interface InspectJson {
  ID: string;
  Spec: {
    Name: string;
    Labels?: Record<string, string>;
    TaskTemplate: { ContainerSpec: { Image: string } };
    Mode: { Replicated?: { Replicas?: number } };
  };
  UpdateStatus?: { State?: string; StartedAt?: string; Message?: string };
}

/** The services of stack `stack`, sorted by name; none when it is not deployed. */
export async function stackServices(context: RunContext, stack: string): Promise<SwarmService[]> {
  const ids = (await docker(context, swarmCommands.stackServiceIds(stack))).split('\n').filter(Boolean);
  if (ids.length === 0) return [];
  const inspected = JSON.parse(await docker(context, swarmCommands.inspectServices(ids))) as InspectJson[];
  return inspected
    // `service ls --filter label=` matches a prefix-free label value exactly, but guard anyway.
    .filter((s) => s.Spec.Labels?.[STACK_LABEL] === stack)
    .map((s) => ({
      id: s.ID,
      name: s.Spec.Name,
      part: s.Spec.Name.startsWith(`${stack}_`) ? s.Spec.Name.slice(stack.length + 1) : s.Spec.Name,
      image: s.Spec.TaskTemplate.ContainerSpec.Image,
      labels: s.Spec.Labels ?? {},
      replicas: s.Spec.Mode.Replicated ? (s.Spec.Mode.Replicated.Replicas ?? 1) : undefined,
      update: s.UpdateStatus?.State ? { state: s.UpdateStatus.State, startedAt: s.UpdateStatus.StartedAt ?? '', message: s.UpdateStatus.Message ?? '' } : undefined,
      spec: JSON.stringify(s.Spec),
    }))
    .sort((a, b) => a.name.localeCompare(b.name));
}

/** Running tasks per service name (`docker service ls`'s `1/2` column: running/desired). */
export async function runningTasks(context: RunContext, stack: string): Promise<Map<string, { running: number; desired: number }>> {
  const out = await docker(context, swarmCommands.stackReplicas(stack));
  const counts = new Map<string, { running: number; desired: number }>();
  for (const line of out.split('\n').filter(Boolean)) {
    const [name, replicas] = line.split('\t') as [string, string];
    const match = /^(\d+)\/(\d+)/.exec(replicas);
    if (match) counts.set(name, { running: Number(match[1]), desired: Number(match[2]) });
  }
  return counts;
}

/** The running containers of a swarm service on this node. */
export async function localTaskContainers(context: RunContext, serviceName: string): Promise<string[]> {
  const out = await docker(context, swarmCommands.localTasks(serviceName));
  return out.split('\n').filter(Boolean);
}
