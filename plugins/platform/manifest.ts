import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { ReleaseError, invalidInput } from '../../api/index.js';
import { LIFECYCLE_EVENTS, type LifecycleEvent } from '../../core/index.js';
import { projectEnvPath } from './interpolate.js';

/** `60s`, `2m`, `500ms` -> milliseconds. */
export function parseDuration(text: string): number {
  const match = /^(\d+)(ms|s|m)$/.exec(text);
  if (!match) throw new Error(`"${text}" is not a duration like 60s, 2m or 500ms`);
  const scale = { ms: 1, s: 1000, m: 60_000 }[match[2] as 'ms' | 's' | 'm'];
  return Number(match[1]) * scale;
}

const duration = z.string().refine((text) => /^(\d+)(ms|s|m)$/.test(text), 'expected a duration like 60s, 2m or 500ms');

/** A service name: a `packages/` folder, a compose project and a state-file word at once. */
export const SERVICE_NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/;
export const SERVICE_NAME_RULE = '1-63 characters of a-z, 0-9, _ and -, starting with a letter or digit';

/** Docker's image reference grammar: [registry[:port]/]path[:tag][@digest]. */
const IMAGE_REFERENCE = /^(?:(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?))*(?::[0-9]+)?\/)?[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$/;

/** A program and its arguments, never a shell string (`[sh, -c, "..."]` says it wants a shell). */
const argvSchema = z.array(z.string().min(1)).min(1, 'expected a command as a list: [program, arg, ...]');

/**
 * A lifecycle hook: an argv run on the host (in the service's folder; `./x` is that folder's file),
 * or `{ run: argv, in: PART }` run inside the running container (task) of part PART of the service.
 */
export const lifecycleHookSchema = z.union([
  argvSchema,
  z.strictObject({
    run: argvSchema,
    /** The compose service (Swarm: the stack's service) to run it in; absent: on the host. */
    in: z.string().regex(/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/, 'expected a compose service name').optional(),
  }),
], { error: 'expected a command as a list ([program, arg, ...]) or { run: [program, arg, ...], in: PART }' });

export type LifecycleHook = z.infer<typeof lifecycleHookSchema>;

/** `hooks:` of a manifest: at most one hook per lifecycle moment. */
export const lifecycleHooksSchema = z.strictObject(
  Object.fromEntries(LIFECYCLE_EVENTS.map((event) => [event, lifecycleHookSchema.optional()])) as Record<LifecycleEvent, z.ZodOptional<typeof lifecycleHookSchema>>,
);

export const manifestSchema = z.strictObject({
  name: z.string().regex(SERVICE_NAME, `expected a service name: ${SERVICE_NAME_RULE}`),
  /** Absent for a service that builds its image: it is then tagged local/<svc>:<build context hash>. */
  image: z.string().regex(IMAGE_REFERENCE, 'expected an image reference like registry.example/team/app:1.2').optional(),
  /** The runtime plugin that deploys the service; `none` for a service released in git only. */
  runtime: z.string().regex(/^[a-z][a-z0-9-]*$/, 'expected a runtime name like compose').default('compose'),
  env: z.record(z.string().regex(/^[A-Z_][A-Z0-9_]*$/), z.string()).optional(),
  health: z.strictObject({
    url: z.url(),
    endpoint: z.string().startsWith('/'),
    timeout: duration.default('60s'),
  }).optional(),
  /**
   * The watch window after verify (see docs/operations.md): for `duration`, the health checks
   * run every `interval`; more than `failures` failed (or inconclusive) answers revert the release.
   */
  watch: z.strictObject({
    duration: duration.optional(),
    interval: duration.refine((text) => parseDuration(text) > 0, 'must be longer than 0').default('5s'),
    failures: z.number().int().min(0).default(2),
  }).optional(),
  /** Behind an edge proxy: what clients are told while the service is in maintenance (docs/operations.md#maintenance-mode). */
  maintenance: z.strictObject({ message: z.string().min(1).max(500) }).optional(),
  /** Commands run before and after this service's deploy, backup and revert (docs/operations.md#lifecycle-hooks). */
  hooks: lifecycleHooksSchema.optional(),
  backup: z.array(z.looseObject({ type: z.string().min(1) })).default([]),
  /** Services whose actions finish before this one's start (migrate's waves): e.g. `after: [db]`. */
  after: z.array(z.string().regex(SERVICE_NAME, `expected a service name: ${SERVICE_NAME_RULE}`)).default([]),
  /**
   * How a new version replaces the running one. `recreate` (the default): the runtime recreates the
   * containers in place. `rolling`: an edge proxy listens on `listen` (default: the health URL's
   * host and port) and sends requests to `port` of the compose service `service`; a new container
   * starts beside the old one and takes requests once healthy, then the old one is drained and removed.
   */
  deploy: z.discriminatedUnion('strategy', [
    z.strictObject({ strategy: z.literal('recreate') }),
    z.strictObject({
      strategy: z.literal('rolling'),
      /** The compose service behind the proxy; default: the one that runs `${IMAGE}`. */
      service: z.string().regex(/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/, 'expected a compose service name').optional(),
      /** The port it listens on inside its container. */
      port: z.number().int().min(1).max(65535),
      /** host:port where the proxy listens, e.g. 127.0.0.1:18080; default: the health URL's. */
      listen: z.string().regex(/^[0-9A-Za-z.-]+:\d{1,5}$/, 'expected host:port like 127.0.0.1:18080').optional(),
      /** The proxy's health check of a container; default: the health endpoint. */
      check: z.string().startsWith('/').optional(),
      /** How long an old container may finish its requests in flight before it is stopped. */
      drain: duration.default('10s'),
    }),
  ], { error: 'expected strategy: recreate or strategy: rolling' }).optional(),
});

export type Manifest = z.infer<typeof manifestSchema>;

export const SERVICES_DIR = 'packages';
export const manifestPath = (service: string) => `${SERVICES_DIR}/${service}/manifest.yaml`;
export const composePath = (service: string) => `${SERVICES_DIR}/${service}/compose.yaml`;

/** Parses and validates a manifest's text; errors name the file and the key. */
export function parseManifest(text: string, file: string, folder: string): Manifest {
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (error) {
    const first = (error as Error).message.split('\n')[0];
    throw new ReleaseError('BAD_INPUT', `${file}: not valid YAML: ${first}`, { hint: 'fix the YAML syntax' });
  }
  const parsed = manifestSchema.safeParse(raw);
  if (!parsed.success) throw invalidInput(file, parsed.error, 'fix that key in the manifest');
  if (parsed.data.name !== folder) {
    throw new ReleaseError('BAD_INPUT', `${file}: name: "${parsed.data.name}" must equal its folder "${folder}"`, { hint: 'rename one of the two' });
  }
  return parsed.data;
}

/**
 * Whether the manifest writes `runtime:` itself: one that does not runs on the repo's default
 * runtime (compose, unless the config makes another one the default, e.g. `defaultPlugins({ runtime: 'swarm' })`).
 */
export function namesRuntime(repoDir: string, service: string): boolean {
  const raw: unknown = parseYaml(readFileSync(join(repoDir, manifestPath(service)), 'utf8'));
  return typeof raw === 'object' && raw !== null && 'runtime' in raw;
}

/** The manifest in the work tree (what HEAD holds). */
/** The text of a service's project `.env` (compose's `${VAR}` values), as the work tree holds it; undefined when there is none. */
export function readProjectEnv(repoDir: string, service: string): string | undefined {
  const file = join(repoDir, projectEnvPath(composePath(service)));
  return existsSync(file) ? readFileSync(file, 'utf8') : undefined;
}

export function readManifest(repoDir: string, service: string): Manifest {
  const file = manifestPath(service);
  const full = join(repoDir, file);
  if (!existsSync(full)) {
    throw new ReleaseError('BAD_INPUT', `unknown service ${service}: ${file} does not exist`, {
      hint: `services are the folders of ${SERVICES_DIR}/ with a manifest.yaml: ${listServices(repoDir).join(', ') || 'none'}`,
    });
  }
  return parseManifest(readFileSync(full, 'utf8'), file, service);
}

export function listServices(repoDir: string): string[] {
  const dir = join(repoDir, SERVICES_DIR);
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true })
    .filter((entry) => entry.isDirectory() && existsSync(join(dir, entry.name, 'manifest.yaml')))
    .map((entry) => entry.name)
    .sort();
}

/** `packages/<svc>/...` -> `<svc>`. */
export function serviceOfPath(path: string): string | undefined {
  const match = /^packages\/([^/]+)\//.exec(path);
  return match?.[1];
}
