import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { ReleaseError, parseOptions, writeFileAtomic, z, type Action, type ExecInRequest, type ExecResult, type Plugin, type RunContext, type RunningPart } from '../../api/index.js';
import { IMAGE_VARIABLE, type ComposeFile } from '../platform/compose-file.js';
import { dotenvVariables, interpolate, substitutionVariables } from '../platform/interpolate.js';
import { registerAllComposeSecrets } from '../platform/compose-secrets.js';
import { filesFingerprint, previewCommit, serviceAtHead } from '../platform/service-at-head.js';
import { composePath, manifestPath, namesRuntime, readManifest, type Manifest } from '../platform/manifest.js';
import { ComposeCli, type ContainerInfo } from './compose.js';
import { composeCommands, upReplacingCommands, type ComposeProject } from './commands.js';
import { tapDockerRuntime, withDeadline } from '../deadlines/index.js';
import { dockerCommandLine, dockerCommands, runDocker, type DockerCommand } from '../../shared/docker/command.js';
import { EdgeProxy, edgeProxyOptionsSchema, proxyName } from '../../shared/edge-proxy/index.js';
import { rollingDrift, rollingSettings, rollOut, type RollingSettings } from './rolling.js';
import { defaultMaintenanceMessage, dropMaintenance, enterMaintenance, leaveMaintenance, listMaintenance, readMaintenance } from '../../shared/edge-proxy/maintenance.js';

export const PLUGIN_NAME = 'runtime-compose';
export const RUNTIME = 'compose';

const optionsSchema = z.strictObject({
  /** e.g. ["docker", "compose"] or ["docker-compose"]; found at start when absent. */
  command: z.array(z.string().min(1)).min(1).optional(),
  /** The edge proxy of services with `deploy: { strategy: rolling }`. */
  edgeProxy: edgeProxyOptionsSchema.optional(),
  /** Whether services whose manifest names no runtime are compose's (false when another runtime is the repo's default). */
  isDefault: z.boolean().default(true),
});

/** What HEAD asks for: the manifest, the compose file, and what the containers are built from and mount. */
interface Desired {
  manifest: Manifest;
  composeText: string;
  compose: ComposeFile;
  /** The image the `${IMAGE}` services run. */
  image?: string;
  env: Record<string, string>;
  /** What compose substitutes for `${VAR}`: the project `.env`, the environment, `env`. */
  variables: Record<string, string>;
  /** The manifest, compose file and project `.env` as the orchestrator applied them. */
  fingerprint: string;
  /** The build contexts and the mounted files, as git object ids at HEAD. */
  contexts: string;
  mounts: string;
}


async function desired(context: RunContext, service: string, commit?: string): Promise<Desired | undefined> {
  const head = await serviceAtHead(context, service, commit);
  if (!head) return undefined;
  const env = { ...head.manifest.env, ...(head.image ? { IMAGE: head.image } : {}) };
  return {
    manifest: head.manifest,
    composeText: head.composeText,
    compose: head.compose,
    image: head.image,
    env,
    variables: substitutionVariables(dotenvVariables(head.dotenv), process.env, env),
    fingerprint: await filesFingerprint(context, head),
    contexts: head.contexts,
    mounts: head.mounts,
  };
}

/** The record of the last apply, kept in the workspace. */
const appliedFile = (context: RunContext, service: string) => join(context.workspaceDir, 'runtime', `${service}.applied`);

function lastApplied(context: RunContext, service: string): Record<string, string> | undefined {
  const file = appliedFile(context, service);
  if (!existsSync(file)) return undefined;
  return Object.fromEntries(readFileSync(file, 'utf8').split('\n').filter((line) => line.includes('=')).map((line) => {
    const at = line.indexOf('=');
    return [line.slice(0, at), line.slice(at + 1)];
  }));
}

/** Updates some keys of the record of the last apply, keeping the others. */
function recordApplied(context: RunContext, service: string, values: Record<string, string>): void {
  const record = { ...lastApplied(context, service), ...values };
  writeFileAtomic(appliedFile(context, service), Object.entries(record).map(([key, value]) => `${key}=${value}\n`).join(''));
}

/** The image a compose service's containers must run, as compose renders its `image:`. */
function wantedImage(want: Desired, composeService: string): string | undefined {
  const spec = want.compose.services.find((s) => s.name === composeService);
  if (!spec?.image) return undefined;
  if (spec.image === IMAGE_VARIABLE) return want.image;
  return interpolate(spec.image, want.variables) || undefined;
}

/** docker shows an image by the name it was run as; `postgres` and `postgres:latest` are one. */
/** How long execIn trusts the container it found; and what docker says when that container is gone or stopped (a 20.10 client says `Error: No such container`). */
const EXEC_TARGET_TTL_MS = 60_000;
const GONE_CONTAINER = /^Error(?: response from daemon)?: (?:No such container|Container \S+ is (?:not running|paused|restarting))/im;

const sameImage = (running: string, wanted: string) => running === wanted || `${running}:latest` === wanted || running === `${wanted}:latest`;

export function composeRuntimePlugin(rawOptions: z.input<typeof optionsSchema> = {}): Plugin {
  const options = parseOptions(PLUGIN_NAME, optionsSchema, rawOptions);
  const cli = new ComposeCli(options.command);
  const proxy = new EdgeProxy(options.edgeProxy);
  /** Containers a backup stopped, per run and service, so `start` restarts exactly those. */
  const stoppedByUs = new WeakMap<RunContext, Map<string, string[]>>();
  /**
   * The container execIn last ran in, per workspace, service and compose service: a backup or a
   * restore runs a dozen commands in one container, and finding it (`docker ps`) each time cost
   * as much as the command. Forgotten when this runtime acts on the service, after a while, and
   * when docker says the container is gone or stopped.
   */
  const execTargets = new Map<string, { id: string; at: number }>();
  const forgetExecTargets = (context: RunContext, service: string) => {
    for (const key of execTargets.keys()) if (key.startsWith(`${context.workspaceDir}\0${service}\0`)) execTargets.delete(key);
  };

  /** A compose service at HEAD, or one HEAD no longer has (it may still have containers to remove). */
  function isOurs(context: RunContext, service: string): boolean {
    if (!existsSync(join(context.repoDir, manifestPath(service)))) return true;
    return readManifest(context.repoDir, service).runtime === RUNTIME && (options.isDefault || namesRuntime(context.repoDir, service));
  }

  async function imageMissing(context: RunContext, image: string): Promise<boolean> {
    return (await runDocker(context, dockerCommands.imageId(image))).exitCode !== 0;
  }

  async function plan(service: string, context: RunContext, actions: Action[]): Promise<void> {
    if (!isOurs(context, service)) return;
    const want = await desired(context, service);
    const containers = await cli.containers(context, service);
    if (!want) {
      if (existsSync(join(context.repoDir, manifestPath(service)))) {
        actions.push({ service, kind: 'redeploy', reason: `${composePath(service)} does not exist` });
      } else if (containers.length > 0) {
        actions.push({ service, kind: 'remove', reason: `not in HEAD, but ${containers.length} container(s) remain` });
      }
      return;
    }
    const applied = lastApplied(context, service);
    const builders = want.compose.services.filter((s) => s.build).map((s) => s.name);
    if (builders.length > 0 && applied?.CONTEXTS !== want.contexts) {
      actions.push({ service, kind: 'build', reason: applied?.CONTEXTS ? 'its build context changed since the last apply' : 'never built by the orchestrator', targets: builders });
    } else if (builders.length > 0 && want.image && (await imageMissing(context, want.image))) {
      actions.push({ service, kind: 'build', reason: `image ${want.image} is not on this host`, targets: builders });
    }
    const redeploy = (reason: string) => actions.push({ service, kind: 'redeploy', reason });
    const rolling = rollingSettings(service, want.manifest, want.composeText, want.compose);
    let rollingWhy: string | undefined;
    const stopped = containers.filter((c) => c.state !== 'running');
    const otherImage = containers.map((c) => ({ c, wanted: wantedImage(want, c.composeService) })).find(({ c, wanted }) => wanted && !sameImage(c.image, wanted));
    if (containers.length === 0) redeploy('not running: no container');
    else if (stopped.length > 0) redeploy(`not running: ${stopped.map((c) => `${c.name} is ${c.state}`).join(', ')}`);
    else if (otherImage) redeploy(`${otherImage.c.composeService}: image ${otherImage.c.image} -> ${otherImage.wanted}`);
    else if (rolling && (rollingWhy = await rollingDrift(context, proxy, rolling, containers))) redeploy(rollingWhy);
    else if (applied?.FINGERPRINT !== want.fingerprint) {
      redeploy(applied ? `${manifestPath(service)} or ${composePath(service)} changed since the last apply` : 'never applied by the orchestrator');
    } else if (applied.MOUNTS !== want.mounts) {
      const mounting = want.compose.services.filter((s) => s.mounts.length > 0).map((s) => s.name);
      actions.push({ service, kind: 'recreate', reason: 'a mounted file changed since the last apply', targets: mounting });
    }
  }

  async function requireDesired(context: RunContext, service: string, commit?: string): Promise<Desired> {
    const want = await desired(context, service, commit);
    if (!want) throw new ReleaseError('BAD_INPUT', `${composePath(service)} does not exist: cannot deploy ${service}`, { hint: `add it, or set runtime: in ${manifestPath(service)}` });
    return want;
  }

  /** The engine's answer when a container name is taken (an interrupted recreate's leftover holds it). */
  const NAME_CONFLICT = /Conflict\. The container name "\/?([^"]*)" is already in use/;

  /** The service's compose project as HEAD asks for it. */
  const projectOf = (context: RunContext, service: string, want: Desired) => cli.project(context, service, join(context.repoDir, composePath(service)), want.env);

  async function compose(context: RunContext, service: string, command: DockerCommand, what: string): Promise<void> {
    const result = await cli.run(context, command);
    if (result.exitCode !== 0) {
      const engineDown = await cli.engineDown(context);
      if (engineDown) {
        throw new ReleaseError('PHASE_FAILED', `compose ${what} of ${service} failed (exit ${result.exitCode}): the Docker engine does not answer (${engineDown})`, {
          lines: result.output.split('\n').slice(-5),
          hint: 'start the Docker engine and check it answers (docker info), then resume; what compose did before is kept and converged again',
          reason: 'ENGINE_DOWN',
        });
      }
      throw new ReleaseError('PHASE_FAILED', `compose ${what} of ${service} failed (exit ${result.exitCode})`, {
        lines: result.output.split('\n').slice(-5), hint: `see the lines above; check with: release --service=${service}`,
      });
    }
  }

  /** A tag named by its sources is that content: one still on the host needs no build (e.g. on revert). */
  async function builtBefore(context: RunContext, want: Desired): Promise<boolean> {
    return !want.manifest.image && want.image !== undefined && !(await imageMissing(context, want.image));
  }

  async function build(context: RunContext, action: Action): Promise<void> {
    const want = await requireDesired(context, action.service);
    if (await builtBefore(context, want)) {
      context.out.detail(`image ${want.image} is already on this host: not rebuilt`);
      context.log.event('apply', 'build-reused', { service: action.service, image: want.image });
      recordApplied(context, action.service, { CONTEXTS: want.contexts });
      return;
    }
    await compose(context, action.service, composeCommands.build(await projectOf(context, action.service, want), action.targets), 'build');
    context.log.event('apply', 'built', { service: action.service, image: want.image, targets: action.targets?.join(',') });
    recordApplied(context, action.service, { CONTEXTS: want.contexts });
  }

  /**
   * `up -d` of the compose services `names` (all when absent), replacing the containers of `forced`
   * even when their config is unchanged, each container once: services without a container are
   * created first (`--no-recreate`, so what the forced ones depend on exists), then the forced
   * ones that already ran are recreated with the new config (`--no-deps`), then the rest converge,
   * which leaves the just-recreated ones alone (their config is what compose would create).
   */
  async function upReplacing(context: RunContext, service: string, want: Desired, forced: string[] | 'all', names: string[] = []): Promise<void> {
    try {
      await upReplacingOnce(context, service, want, forced, names);
    } catch (error) {
      const conflict = error instanceof ReleaseError ? NAME_CONFLICT.exec(error.lines.join('\n')) : null;
      if (!conflict) throw error;
      // A run killed just before this one may still have a create in flight on the engine, under
      // a name the engine then removes itself: the conflict is retried once it has had time to.
      if (!(await removeInterruptedRecreates(context, service, conflict[1]!))) await new Promise((resolve) => setTimeout(resolve, 1000));
      context.log.event('apply', 'name-conflict-retried', { service, container: conflict[1] });
      await upReplacingOnce(context, service, want, forced, names);
    }
  }

  /**
   * Compose v2 recreates a container by creating the new one as `<old id>_<name>` and renaming it
   * once the old one is gone; an `up` killed in between leaves that container, and every later
   * `up` then fails on a name conflict. Those leftovers (the new containers of the interrupted
   * run, never the only copy of any data: volumes stay) are removed; true when there were some.
   */
  async function removeInterruptedRecreates(context: RunContext, service: string, conflicting: string): Promise<boolean> {
    const leftovers = (await cli.containers(context, service)).filter((container) => /^[0-9a-f]{12}_/.test(container.name) || container.name === conflicting);
    for (const container of leftovers) {
      await cli.docker(context, dockerCommands.remove([container.id]));
      context.out.detail(`removed ${container.name}, left by an interrupted recreate`);
      context.log.event('apply', 'leftover-removed', { service, container: container.name });
    }
    return leftovers.length > 0;
  }

  /** The `up`s of upReplacing, as commands. Nothing forced (an ordinary redeploy): compose's own `up` is the first docker call. */
  async function upReplacingPlan(context: RunContext, service: string, want: Desired, forced: string[] | 'all', names: string[] = []): Promise<DockerCommand[]> {
    const existing = forced.length === 0 ? new Set<string>() : new Set((await cli.containers(context, service)).map((c) => c.composeService));
    const inScope = names.length > 0 ? names : want.compose.services.map((s) => s.name);
    return upReplacingCommands(await projectOf(context, service, want), inScope, existing, forced, names);
  }

  async function upReplacingOnce(context: RunContext, service: string, want: Desired, forced: string[] | 'all', names: string[]): Promise<void> {
    for (const command of await upReplacingPlan(context, service, want, forced, names)) await compose(context, service, command, 'up');
  }

  /**
   * A redeploy (`forced`: the parts whose mounted files changed too, if any) or a recreate
   * (`forced`: its targets, or all); records what was applied.
   */
  async function deploy(context: RunContext, action: Action, forced: string[] | 'all'): Promise<void> {
    const want = await requireDesired(context, action.service);
    const rolling = rollingSettings(action.service, want.manifest, want.composeText, want.compose);
    const isForced = (name: string) => forced === 'all' || forced.includes(name);
    if (rolling) {
      // The other compose services (a database, a cache) are deployed as compose deploys them.
      const others = want.compose.services.map((s) => s.name).filter((name) => name !== rolling.target);
      if (others.length > 0) await upReplacing(context, action.service, want, forced, others);
      // A recreate for another service's mounted file leaves the rolled one as it is.
      const { replaced } = action.kind !== 'recreate' || isForced(rolling.target) ? await rollOut({
        context, service: action.service, settings: rolling, image: want.image, cli, proxy, project: await projectOf(context, action.service, want),
        compose: (command, what) => compose(context, action.service, command, what),
      }) : { replaced: 0 };
      recordApplied(context, action.service, { FINGERPRINT: want.fingerprint, MOUNTS: want.mounts, IMAGE: want.image ?? '', STRATEGY: 'rolling' });
      context.log.event('apply', 'rolled', { service: action.service, image: want.image, replaced });
      // A revert's restore stopped it (in maintenance meanwhile); now it serves again.
      await endStopMaintenance(context, action.service, rolling);
      return;
    }
    // A service that left the rolling strategy publishes its own port: its proxy goes first. Only
    // then (or with no record), so an ordinary redeploy's first docker call is compose's own.
    const previous = lastApplied(context, action.service);
    if (previous === undefined || previous.STRATEGY === 'rolling') {
      await proxy.remove(context, proxyName(action.service));
      dropMaintenance(context, action.service);
    }
    await upReplacing(context, action.service, want, forced);
    // What the build contexts were is the build's to record: `up -d` does not rebuild an image it has.
    recordApplied(context, action.service, { FINGERPRINT: want.fingerprint, MOUNTS: want.mounts, IMAGE: want.image ?? '', STRATEGY: 'recreate' });
    const recreated = forced === 'all' ? undefined : forced.join(',') || undefined;
    context.log.event('apply', action.kind === 'recreate' ? 'recreated' : 'redeployed', { service: action.service, image: want.image, targets: action.kind === 'recreate' ? recreated : undefined, recreated: action.kind === 'recreate' ? undefined : recreated });
  }

  /** Removes a service's containers and network; its volumes (data) stay. */
  async function remove(context: RunContext, service: string): Promise<void> {
    const ids = (await cli.containers(context, service)).map((c) => c.id);
    if (ids.length > 0) await cli.docker(context, dockerCommands.remove(ids));
    await proxy.remove(context, proxyName(service));
    dropMaintenance(context, service);
    // Every network compose made for the project (the default one and any the file names), by compose's label.
    const networks = (await cli.docker(context, dockerCommands.projectNetworks(service))).split('\n').filter(Boolean);
    if (networks.length > 0) await runDocker(context, dockerCommands.removeNetworks(networks));
    rmSync(appliedFile(context, service), { force: true });
    context.log.event('apply', 'removed', { service, containers: ids.length });
  }

  /** The proxy settings of a rolling service whose proxy runs as configured now: one that can be put in maintenance. */
  async function maintainable(context: RunContext, service: string): Promise<{ settings: RollingSettings; message: string } | undefined> {
    const want = await desired(context, service);
    const settings = want && rollingSettings(service, want.manifest, want.composeText, want.compose);
    if (!settings || (await proxy.status(context, settings.proxy)) !== 'running') return undefined;
    return { settings, message: want.manifest.maintenance?.message ?? defaultMaintenanceMessage(service) };
  }

  /**
   * Stops the running containers, and later starts exactly those: a one-shot job that had exited
   * stays so. A service behind its edge proxy is in maintenance while stopped (clients get 503
   * with its message, never a refused connection), until the proxy sees it up again.
   */
  async function setRunning(context: RunContext, service: string, running: boolean): Promise<void> {
    const behindProxy = await maintainable(context, service);
    if (!running && behindProxy) {
      const record = await enterMaintenance(context, proxy, { service, message: behindProxy.message, since: new Date().toISOString(), by: 'backup', ticket: context.ticket });
      context.out.detail(`${service} is in maintenance while it is stopped (${proxyName(service)} answers 503${record.by === 'operator' ? ', as its operator set it' : ''})`);
    }
    const stopped = stoppedByUs.get(context) ?? new Map<string, string[]>();
    stoppedByUs.set(context, stopped);
    const containers: ContainerInfo[] = await cli.containers(context, service);
    const ids = running
      ? (stopped.get(service) ?? containers.filter((c) => c.state !== 'running').map((c) => c.id))
      : containers.filter((c) => c.state === 'running').map((c) => c.id);
    if (ids.length > 0) await cli.docker(context, running ? dockerCommands.start(ids) : dockerCommands.stop(ids));
    if (running) stopped.delete(service);
    else stopped.set(service, ids);
    if (!running) context.failpoint(`stopped-${service}`);
    if (running && behindProxy) await endStopMaintenance(context, service, behindProxy.settings);
  }

  /** Lifts a stop's maintenance once the proxy sends requests to a container again; a service still down stays in it. */
  async function endStopMaintenance(context: RunContext, service: string, settings: RollingSettings): Promise<void> {
    if (readMaintenance(context.workspaceDir, service)?.by !== 'backup') return;
    const lift = context.out.command('release', ['maintenance', 'off', service]);
    if (!(await cli.containers(context, service)).some((c) => c.composeService === settings.target && c.state === 'running')) {
      // e.g. an earlier run was killed while it had the service stopped: its redeploy starts one, and lifts it then.
      context.out.warn(`no container of ${service}'s ${settings.target} runs: it stays in maintenance until one serves again (a redeploy); or lift it with: ${lift}`);
      return;
    }
    const started = Date.now();
    const interval = proxy.options.checkIntervalMs;
    // A short stop may never have been seen by the checks: the proxy's own rise, then up in a row, is a check passed since the start.
    await new Promise((resolve) => setTimeout(resolve, interval * proxy.options.rise));
    let upInARow = 0;
    while (upInARow < proxy.options.rise) {
      upInARow = (await proxy.backends(context, settings.proxy)).some((backend) => backend.state === 'up') ? upInARow + 1 : 0;
      if (upInARow >= proxy.options.rise) break;
      if (Date.now() - started > settings.timeoutMs) {
        context.out.warn(`${service} did not pass its edge proxy's health check within ${settings.timeoutMs / 1000}s of its start: it stays in maintenance; once it is up: ${lift}`);
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, proxy.options.checkIntervalMs));
    }
    await leaveMaintenance(context, proxy, service, 'backup');
    context.out.detail(`${service} is out of maintenance: ${proxyName(service)} sends requests to it again`);
  }

  /**
   * `docker exec` in the container of compose service `request.target`, found by compose's labels.
   * A container that is stopped (revert stops a service while its data is restored) is started
   * first: the command needs it. Streams go through `-i` and the command's stdout.
   */
  async function execIn(request: ExecInRequest, context: RunContext): Promise<ExecResult | undefined> {
    if (!isOurs(context, request.service)) return undefined;
    const key = `${context.workspaceDir}\0${request.service}\0${request.target}`;
    const known = execTargets.get(key);
    if (known && Date.now() - known.at < EXEC_TARGET_TTL_MS) {
      const result = await execInContainer(context, request, known.id);
      if (result.exitCode === 0 || !GONE_CONTAINER.test(result.stderr)) return result;
      execTargets.delete(key);
      // Fed from or into a stream, the command cannot run twice: its caller sees the failure.
      if (request.stdinFrom || request.stdoutTo) return result;
    }
    const id = await execTarget(context, request);
    execTargets.set(key, { id, at: Date.now() });
    return execInContainer(context, request, id);
  }

  /** The running container of compose service `request.target`, started first if it is stopped. */
  async function execTarget(context: RunContext, request: ExecInRequest): Promise<string> {
    const containers = (await cli.containers(context, request.service)).filter((c) => c.composeService === request.target);
    let container = containers.find((c) => c.state === 'running');
    if (!container) {
      const stopped = containers[0];
      if (!stopped) {
        throw new ReleaseError('PHASE_FAILED', `service ${request.service} has no container of compose service ${request.target}`, {
          hint: `is ${request.target} a service of ${composePath(request.service)}, and is ${request.service} deployed? (release --service=${request.service})`,
        });
      }
      context.out.detail(`starting ${stopped.name} (${stopped.state}) to run ${request.argv[0]} in it`);
      await cli.docker(context, dockerCommands.start([stopped.id]));
      container = stopped;
    }
    return container.id;
  }

  function execInContainer(context: RunContext, request: ExecInRequest, container: string): Promise<ExecResult> {
    const interactive = Boolean(request.stdinFrom) || request.input !== undefined;
    const command = dockerCommands.execIn({ container, argv: request.argv, user: request.user, env: request.env, interactive });
    return runDocker(context, command, {
      input: request.input, stdinFrom: request.stdinFrom, stdoutTo: request.stdoutTo, stdinMayStopEarly: request.stdinMayStopEarly,
      // The caller's deadline (e.g. a backup's); without one, the run's own scope bounds it.
      ...(request.deadlineMs === undefined ? {} : { deadlineMs: request.deadlineMs, deadlineName: request.deadlineName }),
    });
  }

  /** For a dry run: the commands `build` would run. */
  async function previewBuild(context: RunContext, action: Action): Promise<string[]> {
    const want = await requireDesired(context, action.service, await previewCommit(context));
    if (await builtBefore(context, want)) return [`# image ${want.image} is already on this host: not rebuilt`];
    return [dockerCommandLine(composeCommands.build(await projectOf(context, action.service, want), action.targets))];
  }

  /** For a dry run: the commands `deploy` would run, the containers as they are now. */
  async function previewDeploy(context: RunContext, action: Action, forced: string[] | 'all'): Promise<string[]> {
    const { service } = action;
    const want = await requireDesired(context, service, await previewCommit(context));
    const rolling = rollingSettings(service, want.manifest, want.composeText, want.compose);
    if (!rolling) {
      const previous = lastApplied(context, service);
      const proxyGoes = (previous === undefined || previous.STRATEGY === 'rolling') && (await proxy.exists(context, proxyName(service)));
      return [
        ...(proxyGoes ? [dockerCommandLine(dockerCommands.remove([proxyName(service)]))] : []),
        ...(await upReplacingPlan(context, service, want, forced)).map(dockerCommandLine),
      ];
    }
    const others = want.compose.services.map((s) => s.name).filter((name) => name !== rolling.target);
    const lines = others.length > 0 ? (await upReplacingPlan(context, service, want, forced, others)).map(dockerCommandLine) : [];
    if (action.kind === 'recreate' && forced !== 'all' && !forced.includes(rolling.target)) return lines;
    const running = (await cli.containers(context, service)).filter((c) => c.composeService === rolling.target && c.state === 'running');
    return [...lines, dockerCommandLine(composeCommands.scaleUpBeside(await projectOf(context, service, want), rolling.target, running.length)),
      `# then the edge proxy ${rolling.proxy.name} health-checks the new container at ${rolling.proxy.checkPath}, and drains and removes ${running.map((c) => c.name).join(', ') || 'no old container'}`];
  }

  /** For a dry run: the commands `remove` would run. */
  async function previewRemove(context: RunContext, service: string): Promise<string[]> {
    const ids = (await cli.containers(context, service)).map((c) => c.id);
    const networks = (await cli.docker(context, dockerCommands.projectNetworks(service))).split('\n').filter(Boolean);
    return [
      ...(ids.length > 0 ? [dockerCommandLine(dockerCommands.remove(ids))] : []),
      ...((await proxy.exists(context, proxyName(service))) ? [dockerCommandLine(dockerCommands.remove([proxyName(service)]))] : []),
      ...(networks.length > 0 ? [dockerCommandLine(dockerCommands.removeNetworks(networks))] : []),
    ];
  }

  /** `release status`: the project's containers, with their images' ids. */
  async function describe(service: string, context: RunContext, parts: RunningPart[]): Promise<void> {
    if (!isOurs(context, service)) return;
    const ids = new Map<string, string | undefined>();
    const want = await desired(context, service).catch(() => undefined);
    const known = new Set(want?.compose.services.map((s) => s.name) ?? []);
    for (const container of await cli.containers(context, service)) {
      if (!ids.has(container.image)) {
        const inspected = await runDocker(context, dockerCommands.imageId(container.image));
        ids.set(container.image, inspected.exitCode === 0 ? inspected.stdout.trim() : undefined);
      }
      // A container of the project that compose.yaml does not name: an orphan, or one started by hand.
      const unknown = want !== undefined && !known.has(container.composeService);
      parts.push({
        name: container.name, image: container.image, imageId: ids.get(container.image), state: container.state, ok: container.state === 'running',
        ...(unknown ? { note: `unknown: compose service ${container.composeService} is not in ${composePath(service)}` } : {}),
      });
    }
    const settings = want && rollingSettings(service, want.manifest, want.composeText, want.compose);
    if (settings) {
      const state = await proxy.status(context, settings.proxy);
      // A proxy of an older configuration still serves: that is drift (the next release renews it), not an outage.
      parts.push({ name: settings.proxy.name, image: proxy.options.image, state: state === 'stale' ? 'running (an older configuration)' : state, ok: state === 'running' || state === 'stale', note: `edge proxy on ${settings.proxy.listen.host}:${settings.proxy.listen.port}` });
    }
  }

  const acting = (handler: (context: RunContext, action: Action) => Promise<void>) => async (context: RunContext, action: Action) => {
    forgetExecTargets(context, action.service);
    await handler(context, action);
  };
  const handlers: Record<string, (context: RunContext, action: Action) => Promise<void>> = {
    build,
    redeploy: acting((context, action) => deploy(context, action, action.recreate ?? [])),
    recreate: acting((context, action) => deploy(context, action, action.targets ?? 'all')),
    remove: acting((context, action) => remove(context, action.service)),
    stop: acting((context, action) => setRunning(context, action.service, false)),
    start: acting((context, action) => setRunning(context, action.service, true)),
  };

  const previews: Record<string, (context: RunContext, action: Action) => Promise<string[]>> = {
    build: previewBuild,
    redeploy: (context, action) => previewDeploy(context, action, action.recreate ?? []),
    recreate: (context, action) => previewDeploy(context, action, action.targets ?? 'all'),
    remove: (context, action) => previewRemove(context, action.service),
  };

  return {
    name: PLUGIN_NAME,
    apply({ hooks }) {
      tapDockerRuntime(hooks, { plugin: PLUGIN_NAME, runtime: RUNTIME, plan, execIn, claims: isOurs, handlers, previews });
      hooks.describe.tapPromise(PLUGIN_NAME, (service, context, parts) => describe(service, withDeadline(context, 'docker'), parts));
      // The failure block's last word: a service a stop left in maintenance is down, and says how to lift it.
      hooks.failed.tapPromise(PLUGIN_NAME, async (context) => {
        for (const record of listMaintenance(context.workspaceDir)) {
          const why = record.by === 'operator' ? 'set by an operator' : `since ${record.ticket ?? 'a release'} stopped it, and it is not up again`;
          context.out.warn(`${record.service} is in maintenance (${why}): its edge proxy answers 503; once it is up, lift it with: ${context.out.command('release', ['maintenance', 'off', record.service])}`);
        }
      });
      // Before the ticket script, which may print a secret file it reads.
      hooks.phase.for('ticket').tapPromise({ name: PLUGIN_NAME, stage: -10 }, async (context) => registerAllComposeSecrets(context.repoDir));
    },
  };
}
