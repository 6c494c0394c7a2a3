import { createHash } from 'node:crypto';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { ReleaseError, writeFileAtomic, type Action, type Plugin, type RunContext, parseOptions } from '../../core/index.js';
import { manifestPath, readManifest, SERVICES_DIR, type Manifest } from '../platform/manifest.js';
import { ComposeCli } from './compose.js';

export const PLUGIN_NAME = 'runtime-compose';
export const COMPOSE_FILE = 'compose.yaml';

const optionsSchema = z.strictObject({
  /** e.g. ["docker", "compose"] or ["docker-compose"]; found at start when absent. */
  command: z.array(z.string().min(1)).min(1).optional(),
});

const composePath = (service: string) => `${SERVICES_DIR}/${service}/${COMPOSE_FILE}`;

/** What HEAD asks for: the manifest, the compose file, and the environment compose interpolates. */
interface Desired {
  manifest: Manifest;
  env: Record<string, string>;
  /** A hash of the manifest and compose file: "the config it runs" as the orchestrator applied it. */
  fingerprint: string;
}

function desired(context: RunContext, service: string): Desired | undefined {
  const compose = join(context.repoDir, composePath(service));
  if (!existsSync(join(context.repoDir, manifestPath(service))) || !existsSync(compose)) return undefined;
  const manifest = readManifest(context.repoDir, service);
  const hash = createHash('sha256');
  hash.update(readFileSync(join(context.repoDir, manifestPath(service))));
  hash.update('\0');
  hash.update(readFileSync(compose));
  return { manifest, env: { ...manifest.env, IMAGE: manifest.image }, fingerprint: hash.digest('hex') };
}

/** The record of the last apply, kept in the workspace: the fingerprint compose was given. */
const appliedFile = (context: RunContext, service: string) => join(context.workspaceDir, 'runtime', `${service}.applied`);

function lastApplied(context: RunContext, service: string): string | undefined {
  const file = appliedFile(context, service);
  if (!existsSync(file)) return undefined;
  return /^FINGERPRINT=([0-9a-f]{64})$/m.exec(readFileSync(file, 'utf8'))?.[1];
}

export function composeRuntimePlugin(rawOptions: z.input<typeof optionsSchema> = {}): Plugin {
  const options = parseOptions(PLUGIN_NAME, optionsSchema, rawOptions);
  const cli = new ComposeCli(options.command);

  /** A compose service at HEAD, or one HEAD no longer has (it may still have containers to remove). */
  const isOurs = (context: RunContext, service: string) =>
    existsSync(join(context.repoDir, composePath(service))) || !existsSync(join(context.repoDir, manifestPath(service)));

  async function plan(service: string, context: RunContext, actions: Action[]): Promise<void> {
    if (!isOurs(context, service)) return;
    const want = desired(context, service);
    const containers = await cli.containers(context, service);
    if (!want) {
      if (containers.length > 0) actions.push({ service, kind: 'remove', reason: `not in HEAD, but ${containers.length} container(s) remain` });
      return;
    }
    const redeploy = (reason: string) => actions.push({ service, kind: 'redeploy', reason });
    if (containers.length === 0) return void redeploy('not running: no container');
    const stopped = containers.filter((c) => c.state !== 'running');
    if (stopped.length > 0) return void redeploy(`not running: ${stopped.map((c) => `${c.name} is ${c.state}`).join(', ')}`);
    const otherImage = containers.find((c) => c.image !== want.manifest.image);
    if (otherImage) return void redeploy(`image ${otherImage.image} -> ${want.manifest.image}`);
    const applied = lastApplied(context, service);
    if (applied !== want.fingerprint) {
      redeploy(applied ? `${manifestPath(service)} or ${composePath(service)} changed since the last apply` : 'never applied by the orchestrator');
    }
  }

  async function redeploy(context: RunContext, service: string): Promise<void> {
    const want = desired(context, service);
    if (!want) throw new ReleaseError('BAD_INPUT', `${composePath(service)} does not exist: cannot deploy ${service}`);
    const file = join(context.repoDir, composePath(service));
    const result = await cli.compose(context, service, file, ['up', '-d', '--remove-orphans'], want.env);
    if (result.exitCode !== 0) {
      throw new ReleaseError('PHASE_FAILED', `compose up of ${service} failed (exit ${result.exitCode})`, {
        lines: result.output.split('\n').slice(-5), hint: `see the lines above; check with: just release --service=${service}`,
      });
    }
    writeFileAtomic(appliedFile(context, service), `FINGERPRINT=${want.fingerprint}\nIMAGE=${want.manifest.image}\n`);
    context.log.event('apply', 'redeployed', { service, image: want.manifest.image });
  }

  /** Removes a service's containers and network; its volumes (data) stay. */
  async function remove(context: RunContext, service: string): Promise<void> {
    const ids = (await cli.containers(context, service)).map((c) => c.id);
    if (ids.length > 0) await cli.docker(context, ['rm', '--force', ...ids]);
    await context.exec('docker', ['network', 'rm', `${service}_default`], {});
    rmSync(appliedFile(context, service), { force: true });
    context.log.event('apply', 'removed', { service, containers: ids.length });
  }

  /** Stops the running containers, and later starts exactly those: a one-shot job that had exited stays so. */
  async function setRunning(context: RunContext, service: string, running: boolean): Promise<void> {
    const key = `${PLUGIN_NAME}:stopped:${service}`;
    const containers = await cli.containers(context, service);
    const ids = running
      ? ((context.shared.get(key) as string[] | undefined) ?? containers.filter((c) => c.state !== 'running').map((c) => c.id))
      : containers.filter((c) => c.state === 'running').map((c) => c.id);
    if (ids.length > 0) await cli.docker(context, [running ? 'start' : 'stop', ...ids]);
    if (running) context.shared.delete(key);
    else context.shared.set(key, ids);
  }

  return {
    name: PLUGIN_NAME,
    apply({ hooks }) {
      hooks.plan.tapPromise(PLUGIN_NAME, plan);
      hooks.apply.tapPromise(PLUGIN_NAME, async (action, context) => {
        if (!isOurs(context, action.service)) return undefined;
        switch (action.kind) {
          case 'redeploy': await redeploy(context, action.service); return true;
          case 'remove': await remove(context, action.service); return true;
          case 'stop': await setRunning(context, action.service, false); return true;
          case 'start': await setRunning(context, action.service, true); return true;
          default: return undefined;
        }
      });
    },
  };
}
