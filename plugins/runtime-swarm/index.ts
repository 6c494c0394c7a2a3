/**
 * runtime-swarm: services whose manifest says `runtime: swarm` run as a Docker Swarm stack (stack
 * = service name) deployed from their own compose file, with rolling updates gated on the health
 * check and rolled back by Swarm when a new task fails. See docs/scale-out.md.
 */
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { ReleaseError, parseOptions, writeFileAtomic, z, type Action, type ExecInRequest, type ExecResult, type Plugin, type RunContext, type RunningPart } from '../../api/index.js';
import { tapDockerRuntime, withDeadline } from '../deadlines/index.js';
import { IMAGE_VARIABLE, type ComposeFile } from '../platform/compose-file.js';
import { composePath, manifestPath, namesRuntime, parseDuration, readManifest, type Manifest } from '../platform/manifest.js';
import { ComposeCli } from '../runtime-compose/compose.js';
import { composeCommands } from '../runtime-compose/commands.js';
import { dockerCommandLine, dockerCommands, runDocker } from '../../shared/docker/command.js';
import { swarmCommands } from './commands.js';
import { filesFingerprint, previewCommit, serviceAtHead } from '../platform/service-at-head.js';
import { EdgeProxy, proxyName, type EdgeProxySpec } from '../../shared/edge-proxy/index.js';
import { rollingDeploy } from '../platform/deploy.js';
import { FINGERPRINT_LABEL, imagePath, renderStack } from './render.js';
import { docker, localTaskContainers, runningTasks, stackServices, type SwarmService } from './swarm.js';
import { engineDownReason } from '../../shared/docker/engine-down.js';

export const PLUGIN_NAME = 'runtime-swarm';
export const RUNTIME = 'swarm';

const optionsSchema = z.strictObject({
  /**
   * `HOST:PORT` of a registry every node pulls from: each `${IMAGE}` is pushed there and the
   * stack runs it by digest. Absent: the image must already be on the nodes (one node: this host).
   */
  registry: z.string().regex(/^[A-Za-z0-9.-]+(:\d+)?$/, 'expected HOST[:PORT] of a registry, e.g. 127.0.0.1:5000').optional(),
  /** How a short-syntax published port is published: `host` (on the task's node) or `ingress` (the routing mesh). */
  publishMode: z.enum(['host', 'ingress']).default('host'),
  /** How long a deploy may take to converge (all tasks running, health checks passing). */
  timeout: z.string().regex(/^\d+(ms|s|m)$/, 'expected a duration like 90s or 5m').default('5m'),
  /** The compose command used to render the compose file and to build; found at start when absent. */
  composeCommand: z.array(z.string().min(1)).min(1).optional(),
  /** Swarm is the repo's default runtime: services whose manifest names no runtime run here. */
  isDefault: z.boolean().default(false),
});

export type SwarmRuntimeOptions = z.input<typeof optionsSchema>;

interface Desired {
  manifest: Manifest;
  compose: ComposeFile;
  /** The image the `${IMAGE}` services run, as this host names it. */
  image?: string;
  /** Whether the image is built here (named by its build contexts) rather than named in the manifest. */
  built: boolean;
  fingerprint: string;
  mounts: string;
  /** `deploy: { strategy: rolling }`: the edge proxy in front of the stack's tasks. */
  proxy?: EdgeProxySpec;
}



/** The replica counts a `stop` scaled to 0, kept until `start` puts them back (a kill -9 between keeps them). */
const replicasFile = (context: RunContext, service: string) => join(context.workspaceDir, 'runtime', `${service}.swarm-replicas`);
/** The stack file last deployed, for the operator to read. */
const stackFile = (context: RunContext, service: string) => join(context.workspaceDir, 'runtime', `${service}.stack.yaml`);

function recordedReplicas(context: RunContext, service: string): Map<string, number> {
  const file = replicasFile(context, service);
  if (!existsSync(file)) return new Map();
  return new Map(readFileSync(file, 'utf8').split('\n').filter((line) => line.includes('=')).map((line) => {
    const at = line.indexOf('=');
    return [line.slice(0, at), Number(line.slice(at + 1))] as const;
  }).filter(([, count]) => Number.isInteger(count) && count > 0));
}

const sleep = (ms: number, signal: AbortSignal) => new Promise<void>((resolve) => {
  const timer = setTimeout(resolve, ms);
  signal.addEventListener('abort', () => { clearTimeout(timer); resolve(); }, { once: true });
});

const BAD_UPDATE_STATES = new Set(['rollback_completed', 'rollback_paused', 'paused', 'rollback_started']);
const IN_PROGRESS_STATES = new Set(['updating', 'rollback_started']);

export function swarmRuntimePlugin(rawOptions: SwarmRuntimeOptions = {}): Plugin {
  const options = parseOptions(PLUGIN_NAME, optionsSchema, rawOptions);
  const cli = new ComposeCli(options.composeCommand);
  const timeoutMs = parseDuration(options.timeout);
  const edgeProxy = new EdgeProxy();

  /** A swarm service at HEAD, or one HEAD no longer has whose stack still runs (it is ours to remove). */
  async function claims(context: RunContext, service: string): Promise<boolean> {
    if (existsSync(join(context.repoDir, manifestPath(service)))) {
      if (options.isDefault && !namesRuntime(context.repoDir, service)) return true;
      return readManifest(context.repoDir, service).runtime === RUNTIME;
    }
    // An engine that is no swarm manager (or none at all) runs no stack: compose-only hosts are not bothered.
    const listed = await runDocker(context, swarmCommands.stackServiceIds(service));
    return listed.exitCode === 0 && listed.stdout.trim() !== '';
  }

  async function desired(context: RunContext, service: string, commit?: string): Promise<Desired | undefined> {
    const head = await serviceAtHead(context, service, commit);
    if (!head) return undefined;
    const { manifest, composeText, compose, image, built, mounts } = head;
    // The stack also changes with the registry and the publish mode it is deployed with.
    const fingerprint = await filesFingerprint(context, head, mounts, options.registry ?? '', options.publishMode);
    const rolling = rollingDeploy(service, manifest, composeText, compose);
    const proxy = rolling && {
      name: proxyName(service), owner: service, network: `${service}_default`, backendHost: `tasks.${rolling.target}`, backendPort: rolling.port,
      checkPath: rolling.checkPath, listen: rolling.listen,
    };
    return { manifest, compose, image, built, fingerprint, mounts, proxy };
  }

  async function requireDesired(context: RunContext, service: string, commit?: string): Promise<Desired> {
    const want = await desired(context, service, commit);
    if (!want) throw new ReleaseError('BAD_INPUT', `${composePath(service)} does not exist: cannot deploy ${service} to swarm`, { hint: `add it, or set runtime: in ${manifestPath(service)}` });
    return want;
  }

  async function imageMissing(context: RunContext, image: string): Promise<boolean> {
    return (await runDocker(context, dockerCommands.imageId(image))).exitCode !== 0;
  }

  /** The registry's name of `image` by digest, when this host's copy of it was pushed there. */
  async function pushedReference(context: RunContext, image: string): Promise<string | undefined> {
    const result = await runDocker(context, swarmCommands.repoDigests(image));
    if (result.exitCode !== 0) return undefined;
    const prefix = `${options.registry}/${imagePath(image).path}@`;
    return (JSON.parse(result.stdout) as string[] | null)?.find((digest) => digest.startsWith(prefix));
  }

  /** The image reference the stack runs: the image itself, or its digest in the registry. */
  async function wantedReference(context: RunContext, image: string): Promise<string | undefined> {
    return options.registry ? pushedReference(context, image) : image;
  }

  async function push(context: RunContext, image: string): Promise<string> {
    const { path, tag } = imagePath(image);
    const target = `${options.registry}/${path}:${tag}`;
    if (await imageMissing(context, image)) {
      throw new ReleaseError('PHASE_FAILED', `image ${image} is not on this host: nothing to push to ${options.registry}`, { hint: `docker pull ${image} (or build it), then release again` });
    }
    await docker(context, swarmCommands.tag(image, target));
    context.out.detail(`pushing ${target}`);
    const result = await runDocker(context, swarmCommands.push(target), { onLine: (line) => context.out.detail(line) });
    if (result.exitCode !== 0) {
      throw new ReleaseError('PHASE_FAILED', `docker push ${target} failed: ${result.stderr.split('\n').filter(Boolean).pop() ?? `exit ${result.exitCode}`}`, {
        hint: `can this host reach the registry? (curl http://${options.registry}/v2/)`, reason: engineDownReason(result.stderr),
      });
    }
    const reference = await pushedReference(context, image);
    if (!reference) throw new ReleaseError('PHASE_FAILED', `docker push ${target} reported no digest`, { hint: `check the registry at ${options.registry}` });
    context.log.event('apply', 'pushed', { image: reference });
    return reference;
  }

  async function plan(service: string, context: RunContext, actions: Action[]): Promise<void> {
    if (!(await claims(context, service))) return;
    const want = await desired(context, service);
    const running = await stackServices(context, service);
    if (!want) {
      if (existsSync(join(context.repoDir, manifestPath(service)))) actions.push({ service, kind: 'redeploy', reason: `${composePath(service)} does not exist` });
      else if (running.length > 0) actions.push({ service, kind: 'remove', reason: `not in HEAD, but stack ${service} runs ${running.length} service(s)` });
      return;
    }
    const builders = want.compose.services.filter((s) => s.build).map((s) => s.name);
    if (want.built && want.image && (await imageMissing(context, want.image))) {
      actions.push({ service, kind: 'build', reason: `image ${want.image} is not on this host`, targets: builders });
    }
    const reason = await driftReason(context, service, want, running);
    if (reason) actions.push({ service, kind: 'redeploy', reason });
  }

  async function driftReason(context: RunContext, service: string, want: Desired, running: SwarmService[]): Promise<string | undefined> {
    if (running.length === 0) return `not running: no stack ${service}`;
    const parts = want.compose.services.map((s) => s.name);
    const missing = parts.filter((part) => !running.some((s) => s.part === part));
    if (missing.length > 0) return `not running: no swarm service ${missing.map((part) => `${service}_${part}`).join(', ')}`;
    const extra = running.filter((s) => !parts.includes(s.part));
    if (extra.length > 0) return `${extra.map((s) => s.name).join(', ')} is not in ${composePath(service)}`;
    for (const s of running) {
      const spec = want.compose.services.find((c) => c.name === s.part);
      let wanted: string | undefined;
      if (spec?.image === IMAGE_VARIABLE && want.image) {
        wanted = await wantedReference(context, want.image);
        if (!wanted) return `image ${want.image} is not pushed to ${options.registry}`;
      } else if (spec?.image && !spec.image.includes('$')) {
        wanted = spec.image;
      }
      if (wanted && s.image !== wanted && `${s.image}:latest` !== wanted && s.image !== `${wanted}:latest`) return `${s.part}: image ${s.image} -> ${wanted}`;
    }
    const tasks = await runningTasks(context, service);
    for (const s of running) {
      if (s.replicas === 0) return `not running: ${s.name} is scaled to 0`;
      const count = tasks.get(s.name);
      if (count && count.running < count.desired) return `not running: ${s.name} runs ${count.running} of ${count.desired} task(s)`;
      if (s.update && BAD_UPDATE_STATES.has(s.update.state)) return `${s.name}: its last update ended ${s.update.state.replace('_', ' ')}: ${s.update.message}`;
    }
    if (want.proxy) {
      const status = await edgeProxy.status(context, want.proxy);
      if (status !== 'running') return `edge proxy ${want.proxy.name} is ${status === 'stale' ? 'running another configuration than the manifest asks' : status}`;
    }
    const updating = running.find((s) => s.update?.state === 'updating');
    if (updating) return `${updating.name}: an update is still rolling (${updating.update!.message})`;
    const stale = running.find((s) => s.labels[FINGERPRINT_LABEL] !== want.fingerprint);
    if (stale) {
      return stale.labels[FINGERPRINT_LABEL] === undefined
        ? `${stale.name} was not deployed by the orchestrator`
        : `${manifestPath(service)}, ${composePath(service)} or a mounted file changed since the last apply`;
    }
    return undefined;
  }

  async function build(context: RunContext, action: Action): Promise<void> {
    const want = await requireDesired(context, action.service);
    if (!want.built || !want.image) return;
    if (!(await imageMissing(context, want.image))) {
      context.out.detail(`image ${want.image} is already on this host: not rebuilt`);
      context.log.event('apply', 'build-reused', { service: action.service, image: want.image });
      return;
    }
    const project = await cli.project(context, action.service, join(context.repoDir, composePath(action.service)), { ...want.manifest.env, IMAGE: want.image });
    const result = await cli.run(context, composeCommands.build(project, action.targets));
    if (result.exitCode !== 0) {
      throw new ReleaseError('PHASE_FAILED', `compose build of ${action.service} failed (exit ${result.exitCode})`, { lines: result.output.split('\n').slice(-5), hint: 'see the lines above' });
    }
    context.log.event('apply', 'built', { service: action.service, image: want.image });
  }

  /** The compose file with ${IMAGE} and the manifest's env substituted, as compose renders it. */
  async function renderCompose(context: RunContext, service: string, env: Record<string, string>): Promise<string> {
    const result = await runDocker(context, composeCommands.config(await cli.project(context, service, join(context.repoDir, composePath(service)), env)));
    if (result.exitCode !== 0) {
      // Prepare checked the file's shape; what compose itself refuses shows only here, as for `up`.
      throw new ReleaseError('PHASE_FAILED', `${composePath(service)}: compose cannot render it: ${result.stderr.split('\n').filter(Boolean).pop() ?? `exit ${result.exitCode}`}`, {
        hint: `check it with: ${(await cli.command(context)).join(' ')} --file ${composePath(service)} config`,
      });
    }
    return result.stdout;
  }

  async function deploy(context: RunContext, action: Action): Promise<void> {
    const service = action.service;
    const want = await requireDesired(context, service);
    if (want.proxy) await edgeProxy.requireImage(context);
    const reference = want.image ? (options.registry ? await push(context, want.image) : want.image) : undefined;
    context.failpoint('swarm-after-push');
    const env = { ...want.manifest.env, ...(reference ? { IMAGE: reference } : {}) };
    const rendered = renderStack(await renderCompose(context, service, env), {
      publishMode: options.publishMode, fingerprint: want.fingerprint, mounts: want.mounts, file: composePath(service), attachable: Boolean(want.proxy),
      source: readFileSync(join(context.repoDir, composePath(service)), 'utf8'),
    });
    writeFileAtomic(stackFile(context, service), rendered.text);
    for (const note of rendered.notes) context.out.detail(note);
    const before = await stackServices(context, service);
    const result = await runDocker(context, swarmCommands.stackDeploy(stackFile(context, service), service), {
      // The engine's advice about --detach concerns its own CLI: the orchestrator waits (converge).
      onLine: (line) => { if (!/--detach=false|tasks will be created in the background/.test(line)) context.out.detail(line); },
    });
    if (result.exitCode !== 0) {
      throw new ReleaseError('PHASE_FAILED', `docker stack deploy of ${service} failed (exit ${result.exitCode})`, {
        lines: result.output.split('\n').filter(Boolean).slice(-5), hint: `the stack file is ${stackFile(context, service)}; check the engine with: docker stack ps ${service}`,
        reason: engineDownReason(result.output),
      });
    }
    // A kill here leaves Swarm rolling the update on its own; --from or a revert redeploys and waits again.
    context.failpoint('swarm-after-stack-deploy');
    rmSync(replicasFile(context, service), { force: true });
    // The stack's network exists now: the proxy joins it and follows the tasks as they come and go.
    if (want.proxy && (await edgeProxy.ensure(context, want.proxy)) === 'created') {
      context.out.detail(`edge proxy ${want.proxy.name} listens on ${want.proxy.listen.host}:${want.proxy.listen.port} for ${want.proxy.backendHost}`);
    }
    await converge(context, service, before);
    context.log.event('apply', 'redeployed', { service, image: reference });
  }

  /**
   * Waits until every service of the stack runs its desired tasks and any rolling update it
   * started has completed. An update Swarm rolled back (a new task failed its health check or
   * exited) is a failed health check: the previous version is still serving.
   */
  async function converge(context: RunContext, stack: string, before: SwarmService[]): Promise<void> {
    const started = Date.now();
    const deadline = started + timeoutMs;
    let lastLine = '';
    for (;;) {
      const services = await stackServices(context, stack);
      const tasks = await runningTasks(context, stack);
      const waiting: string[] = [];
      for (const s of services) {
        const old = before.find((b) => b.id === s.id);
        const rolling = old !== undefined && templateOf(old.spec) !== templateOf(s.spec);
        const update = s.update && s.update.startedAt !== old?.update?.startedAt ? s.update : undefined;
        const count = tasks.get(s.name);
        // A rollback is waited for until the previous version runs again: then it is reported.
        if (update && BAD_UPDATE_STATES.has(update.state) && update.state !== 'rollback_started' && (!count || count.running >= count.desired)) {
          throw await rolledBack(context, s, update.message);
        }
        if (update && BAD_UPDATE_STATES.has(update.state)) {
          waiting.push(`${s.part}: ${update.state.replace('_', ' ')}, ${count?.running ?? 0}/${count?.desired ?? '?'} running`);
        } else if (s.update && IN_PROGRESS_STATES.has(s.update.state)) {
          // Also one this run did not start (a run killed after its deploy, resumed): it must finish first.
          waiting.push(`${s.part}: ${s.update.state.replace('_', ' ')}`);
        } else if (rolling && (!update || update.state !== 'completed')) {
          // An update Swarm skipped (nothing of the tasks changed) never reports: running is enough then.
          if (update || Date.now() - started < 15_000 || !count || count.running < count.desired) waiting.push(`${s.part}: ${update ? update.state.replace('_', ' ') : 'update pending'}`);
        } else if (count && count.running < count.desired) {
          waiting.push(`${s.part}: ${count.running}/${count.desired} running`);
        }
      }
      if (waiting.length === 0) {
        // A start-first update completes while the old task is still stopping: the release waits for it.
        for (const s of services) {
          const out = await docker(context, swarmCommands.shutdownTaskStates(s.name));
          if (out.split('\n').some((state) => state.startsWith('Running'))) waiting.push(`${s.part}: the old task is stopping`);
        }
      }
      if (waiting.length === 0) return;
      const line = `waiting for ${stack}: ${waiting.join(', ')}`;
      if (line !== lastLine) context.out.detail(line);
      lastLine = line;
      if (Date.now() > deadline) {
        const errors = await taskErrors(context, services.map((s) => s.name));
        throw new ReleaseError('HEALTH_FAILED', `stack ${stack} did not converge within ${options.timeout}: ${waiting.join(', ')}`, {
          lines: errors, hint: `see: docker stack ps ${stack} --no-trunc`, reason: 'ROLLOUT_FAILED',
        });
      }
      if (context.signal.aborted) throw new ReleaseError('INTERRUPTED', `interrupted while ${stack} was updating`);
      await sleep(500, context.signal);
    }
  }

  async function taskErrors(context: RunContext, names: string[]): Promise<string[]> {
    const lines: string[] = [];
    for (const name of names) {
      const out = await runDocker(context, swarmCommands.taskErrors(name));
      lines.push(...out.stdout.split('\n').filter((line) => /\S+ \S+ (Failed|Rejected|Shutdown).* \S/.test(line)).slice(0, 3));
    }
    return lines;
  }

  async function rolledBack(context: RunContext, service: SwarmService, message: string): Promise<ReleaseError> {
    context.log.event('apply', 'rolled-back', { service: service.name });
    return new ReleaseError('HEALTH_FAILED', `swarm rolled ${service.name} back to its previous version: ${message || 'a new task failed'}`, {
      lines: await taskErrors(context, [service.name]),
      hint: `the previous version still serves; a new task failed its health check or exited (docker service ps ${service.name} --no-trunc)`,
      reason: 'ROLLOUT_FAILED',
    });
  }

  async function remove(context: RunContext, service: string): Promise<void> {
    // It is attached to the stack's network, which cannot go while it is.
    await edgeProxy.remove(context, proxyName(service));
    await docker(context, swarmCommands.stackRemove(service));
    // `stack rm` returns before the tasks and the network are gone; a redeploy of the name needs them gone.
    const deadline = Date.now() + 60_000;
    for (;;) {
      const left = await docker(context, swarmCommands.stackContainers(service));
      const networks = await docker(context, swarmCommands.stackNetworks(service));
      if (left.trim() === '' && networks.trim() === '') break;
      if (Date.now() > deadline) throw new ReleaseError('PHASE_FAILED', `stack ${service} was removed but its tasks or network remain after 60s`, { hint: `check: docker stack ps ${service}` });
      await sleep(500, context.signal);
    }
    rmSync(replicasFile(context, service), { force: true });
    rmSync(stackFile(context, service), { force: true });
    context.log.event('apply', 'removed', { service });
  }

  /**
   * `docker service scale` without the CLI's own wait (which adds 5 s of "verifying" per call):
   * the tasks are watched here until each service runs exactly its new count.
   */
  async function scale(context: RunContext, stack: string, counts: Map<string, number>): Promise<void> {
    await docker(context, swarmCommands.scale(counts));
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const waiting: string[] = [];
      for (const [name, count] of counts) {
        const running = (await localTaskContainers(context, name)).length;
        const tasks = (await runningTasks(context, stack)).get(name);
        const now = count === 0 ? running : (tasks?.running ?? 0);
        if (now !== count) waiting.push(`${name} ${now}/${count}`);
      }
      if (waiting.length === 0) return;
      if (Date.now() > deadline) throw new ReleaseError('PHASE_FAILED', `scaling ${stack} did not finish within ${options.timeout}: ${waiting.join(', ')}`, { hint: `see: docker stack ps ${stack} --no-trunc` });
      await sleep(250, context.signal);
    }
  }

  /** Scales the stack's replicated services to 0, recording their counts first, so a crash between still knows them. */
  async function stop(context: RunContext, service: string): Promise<void> {
    const services = (await stackServices(context, service)).filter((s) => s.replicas !== undefined);
    const recorded = recordedReplicas(context, service);
    for (const s of services) if (s.replicas! > 0) recorded.set(s.name, s.replicas!);
    if (recorded.size === 0) return;
    writeFileAtomic(replicasFile(context, service), [...recorded].map(([name, count]) => `${name}=${count}\n`).join(''));
    await scale(context, service, new Map([...recorded.keys()].map((name) => [name, 0])));
  }

  async function start(context: RunContext, service: string): Promise<void> {
    const recorded = recordedReplicas(context, service);
    if (recorded.size === 0) return;
    await scale(context, service, recorded);
    rmSync(replicasFile(context, service), { force: true });
  }

  /** `docker exec` in a running task of `<stack>_<target>` on this node; a stopped (scaled to 0) one is scaled back first. */
  async function execIn(request: ExecInRequest, context: RunContext): Promise<ExecResult | undefined> {
    if (!(await claims(context, request.service))) return undefined;
    const name = `${request.service}_${request.target}`;
    let [container] = await localTaskContainers(context, name);
    if (!container) {
      const target = (await stackServices(context, request.service)).find((s) => s.name === name);
      if (!target) {
        throw new ReleaseError('PHASE_FAILED', `stack ${request.service} has no swarm service ${name}`, {
          hint: `is ${request.target} a service of ${composePath(request.service)}, and is ${request.service} deployed? (release --service=${request.service})`,
        });
      }
      if (target.replicas === 0) {
        const count = recordedReplicas(context, request.service).get(name) ?? 1;
        context.out.detail(`scaling ${name} to ${count} to run ${request.argv[0]} in it`);
        await scale(context, request.service, new Map([[name, count]]));
      }
      [container] = await localTaskContainers(context, name);
      if (!container) {
        throw new ReleaseError('PHASE_FAILED', `no task of ${name} runs on this node: commands run in a local task`, {
          hint: `pin ${request.target} to this node with a placement constraint (see docs/scale-out.md)`,
        });
      }
    }
    const interactive = Boolean(request.stdinFrom) || request.input !== undefined;
    return runDocker(context, dockerCommands.execIn({ container, argv: request.argv, user: request.user, env: request.env, interactive }), {
      input: request.input, stdinFrom: request.stdinFrom, stdoutTo: request.stdoutTo, stdinMayStopEarly: request.stdinMayStopEarly,
    });
  }

  /** For a dry run: the commands `build` would run. */
  async function previewBuild(context: RunContext, action: Action): Promise<string[]> {
    const want = await requireDesired(context, action.service, await previewCommit(context));
    if (!want.built || !want.image) return [];
    if (!(await imageMissing(context, want.image))) return [`# image ${want.image} is already on this host: not rebuilt`];
    const project = await cli.project(context, action.service, join(context.repoDir, composePath(action.service)), { ...want.manifest.env, IMAGE: want.image });
    return [dockerCommandLine(composeCommands.build(project, action.targets))];
  }

  /** For a dry run: the commands `deploy` would run. */
  async function previewDeploy(context: RunContext, action: Action): Promise<string[]> {
    const service = action.service;
    const want = await requireDesired(context, service, await previewCommit(context));
    const lines: string[] = [];
    let image = want.image;
    if (want.image && options.registry) {
      const { path, tag } = imagePath(want.image);
      const target = `${options.registry}/${path}:${tag}`;
      lines.push(dockerCommandLine(swarmCommands.tag(want.image, target)), dockerCommandLine(swarmCommands.push(target)));
      image = `${options.registry}/${path}@<the digest the push reports>`;
    }
    const project = await cli.project(context, service, join(context.repoDir, composePath(service)), { ...want.manifest.env, ...(image ? { IMAGE: image } : {}) });
    lines.push(`# ${stackFile(context, service)} is rendered from: ${dockerCommandLine(composeCommands.config(project))}`);
    lines.push(dockerCommandLine(swarmCommands.stackDeploy(stackFile(context, service), service)));
    lines.push(`# then it waits until every service of the stack runs its tasks (at most ${options.timeout})`);
    return lines;
  }

  /** `release status`: the stack's services with their running/desired tasks. */
  async function describe(service: string, context: RunContext, parts: RunningPart[]): Promise<void> {
    if (!(await claims(context, service))) return;
    const tasks = await runningTasks(context, service);
    for (const s of await stackServices(context, service)) {
      const count = tasks.get(s.name);
      parts.push({ name: s.name, image: s.image, state: count ? `${count.running}/${count.desired} running` : 'unknown', ok: count !== undefined && count.running >= count.desired && count.desired > 0 });
    }
  }

  const handlers: Record<string, (context: RunContext, action: Action) => Promise<void>> = {
    build,
    redeploy: deploy,
    recreate: deploy,
    remove: (context, action) => remove(context, action.service),
    stop: (context, action) => stop(context, action.service),
    start: (context, action) => start(context, action.service),
  };

  const previews: Record<string, (context: RunContext, action: Action) => Promise<string[]>> = {
    build: previewBuild,
    redeploy: previewDeploy,
    recreate: previewDeploy,
    remove: async (context, action) => [
      ...((await edgeProxy.exists(context, proxyName(action.service))) ? [dockerCommandLine(dockerCommands.remove([proxyName(action.service)]))] : []),
      dockerCommandLine(swarmCommands.stackRemove(action.service)),
    ],
  };

  return {
    name: PLUGIN_NAME,
    apply({ hooks }) {
      tapDockerRuntime(hooks, { plugin: PLUGIN_NAME, runtime: RUNTIME, plan, execIn, claims, handlers, previews });
      hooks.describe.tapPromise(PLUGIN_NAME, (service, context, parts) => describe(service, withDeadline(context, 'docker'), parts));
    },
  };
}

/** The parts of a service spec whose change replaces its tasks (what a rolling update rolls). */
function templateOf(spec: string): string {
  const parsed = JSON.parse(spec) as { TaskTemplate?: unknown; EndpointSpec?: unknown };
  return JSON.stringify([parsed.TaskTemplate, parsed.EndpointSpec]);
}
