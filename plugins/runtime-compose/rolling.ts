import { ReleaseError, type RunContext } from '../../api/index.js';
import { EdgeProxy, proxyName, type EdgeProxySpec } from '../../shared/edge-proxy/index.js';
import { reapplyMaintenance } from '../../shared/edge-proxy/maintenance.js';
import type { ComposeFile } from '../platform/compose-file.js';
import { rollingDeploy } from '../platform/deploy.js';
import type { Manifest } from '../platform/manifest.js';
import type { ComposeCli, ContainerInfo } from './compose.js';
import { composeCommands, type ComposeProject } from './commands.js';
import { dockerCommands, runDocker, type DockerCommand } from '../../shared/docker/command.js';

/** A rolling service's settings, from its manifest and compose file. */
export interface RollingSettings {
  /** The compose service behind the proxy. */
  target: string;
  proxy: EdgeProxySpec;
  /** How long a new container has to pass the proxy's health check. */
  timeoutMs: number;
  drainMs: number;
}


/** undefined for a service released the default way (containers recreated in place). */
export function rollingSettings(service: string, manifest: Manifest, composeText: string, compose: ComposeFile): RollingSettings | undefined {
  if (manifest.deploy?.strategy !== 'rolling') return undefined;
  const deploy = rollingDeploy(service, manifest, composeText, compose)!;
  return {
    target: deploy.target,
    proxy: {
      name: proxyName(service), owner: service, network: `${service}_default`, backendHost: deploy.target, backendPort: deploy.port,
      checkPath: deploy.checkPath, listen: deploy.listen,
    },
    timeoutMs: deploy.timeoutMs,
    drainMs: deploy.drainMs,
  };
}

/** Why the proxy of a rolling service is not as it should be, for the drift check; undefined when it is. */
export async function rollingDrift(context: RunContext, proxy: EdgeProxy, settings: RollingSettings, containers: ContainerInfo[]): Promise<string | undefined> {
  const status = await proxy.status(context, settings.proxy);
  if (status === 'stale') return `edge proxy ${settings.proxy.name} runs another configuration than the manifest asks`;
  if (status !== 'running') return `edge proxy ${settings.proxy.name} is ${status}`;
  const running = containers.filter((c) => c.composeService === settings.target && c.state === 'running');
  if (running.length > 1) return `a rolling update did not finish: ${running.length} containers of ${settings.target} run (${running.map((c) => c.name).join(', ')})`;
  return undefined;
}

export interface RollOut {
  context: RunContext;
  service: string;
  settings: RollingSettings;
  image?: string;
  cli: ComposeCli;
  proxy: EdgeProxy;
  project: ComposeProject;
  /** Runs a compose command of this service; throws on failure. */
  compose: (command: DockerCommand, what: string) => Promise<void>;
}

/**
 * Starts a container of the new version beside the running one, waits until the proxy's health
 * check passes on it, then drains and removes the old ones. A new container that never passes is
 * removed and the old ones keep serving: HEALTH_FAILED (exit 7).
 */
export async function rollOut({ context, service, settings, image, cli, proxy, project, compose }: RollOut): Promise<{ replaced: number }> {
  const { target } = settings;
  await proxy.requireImage(context);
  const before = (await cli.containers(context, service)).filter((c) => c.composeService === target);
  const leftovers = before.filter((c) => c.state !== 'running');
  // A container of an earlier, interrupted rollout or stopped by hand serves nobody: it goes first.
  if (leftovers.length > 0) await cli.docker(context, dockerCommands.remove(leftovers.map((c) => c.id)));
  let old = before.filter((c) => c.state === 'running');
  // No proxy yet beside running containers: the service is switching from recreate to rolling.
  const switching = old.length > 0 && (await proxy.status(context, settings.proxy)) === 'missing';
  await compose(composeCommands.scaleUpBeside(project, target, old.length), 'up (rolling)');
  const fresh = (await cli.containers(context, service)).filter((c) => c.composeService === target && !before.some((b) => b.id === c.id));
  if (fresh.length !== 1) {
    throw new ReleaseError('PHASE_FAILED', `rolling update of ${service}: compose started ${fresh.length} new container(s) of ${target}, expected 1`, {
      hint: `see them with: docker ps --filter label=com.docker.compose.project=${service}`,
    });
  }
  const next = fresh[0]!;
  if (switching) {
    // They publish the port the proxy takes, themselves: they stop first, one last short outage.
    context.out.detail(`switching ${service} to rolling releases: ${old.map((c) => c.name).join(', ')} stop(s) before the edge proxy takes ${settings.proxy.listen.host}:${settings.proxy.listen.port}`);
    await cli.docker(context, dockerCommands.stop(old.map((c) => c.id)));
    await cli.docker(context, dockerCommands.remove(old.map((c) => c.id)));
    old = [];
  }
  const ensured = await proxy.ensure(context, settings.proxy);
  if (ensured === 'created') context.out.detail(`edge proxy ${settings.proxy.name} listens on ${settings.proxy.listen.host}:${settings.proxy.listen.port}`);
  // A service in maintenance stays so behind its new (or restarted) proxy.
  if (ensured !== 'kept') await reapplyMaintenance(context, proxy, service);
  const address = await proxy.addressOf(context, settings.proxy, next.id);
  context.out.detail(`${next.name} (${image ?? next.image}) started beside ${old.map((c) => c.name).join(', ') || 'no old container'}; waiting for the proxy's health check ${settings.proxy.checkPath}`);
  const exited = async () => {
    const result = await runDocker(context, dockerCommands.containerState(next.id));
    const state = result.stdout.trim();
    return state === 'running' ? undefined : `${next.name} is ${state || 'gone'}`;
  };
  const outcome = await proxy.waitUp(context, settings.proxy, address, settings.timeoutMs, exited,
    (last, waitedMs) => context.out.detail(`still waiting for ${next.name} after ${(waitedMs / 1000).toFixed(0)}s: ${last}`));
  if (!outcome.up) {
    const logs = await runDocker(context, dockerCommands.logTail(next.id));
    await cli.docker(context, dockerCommands.remove([next.id]));
    context.log.event('apply', 'rollout-failed', { service, image, container: next.name });
    throw new ReleaseError('HEALTH_FAILED',
      `rolling update of ${service}: the new container ${next.name} did not pass the health check ${settings.proxy.checkPath} in ${(outcome.waitedMs / 1000).toFixed(1)}s (${outcome.last}); it was removed, ${old.length > 0 ? `${old.map((c) => c.name).join(', ')} still serve(s)` : 'nothing serves'}`, {
        lines: logs.output.split('\n').filter(Boolean).slice(-5).map((line) => `${next.name}: ${line}`),
        hint: `fix the image or its health check and resume, or roll back; the proxy's view: docker logs ${settings.proxy.name}`,
        service,
        reason: 'ROLLOUT_FAILED',
      });
  }
  // Both versions serve here: a release killed now leaves an unfinished rollout the drift check names.
  context.failpoint(`mid-rollout-${service}`);
  context.out.detail(`${next.name} passes the health check after ${(outcome.waitedMs / 1000).toFixed(1)}s; draining ${old.map((c) => c.name).join(', ') || 'nothing'}`);
  for (const container of old) {
    const oldAddress = await proxy.addressOf(context, settings.proxy, container.id).catch(() => undefined);
    if (oldAddress) await proxy.drain(context, settings.proxy, oldAddress, settings.drainMs);
    await cli.docker(context, dockerCommands.stop([container.id]));
    await cli.docker(context, dockerCommands.remove([container.id]));
    // Its slot stays drained until DNS drops the address: waiting for that cost a second a release;
    // the next container that lands in the slot makes it ready (EdgeProxy.waitUp).
  }
  return { replaced: old.length };
}
