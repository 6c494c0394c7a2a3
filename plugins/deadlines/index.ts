/**
 * Deadlines of the external commands the built-in plugins run, one per kind of command. Past its
 * deadline a command's process group is stopped and the phase fails naming the command and how
 * long it ran (core/exec.ts). The health probe has its own (`health.timeout` in the manifest).
 *
 * A repo changes them in its release.config.ts: `defaultPlugins({ deadlines: { ticket: '8h' } })`.
 */
import { parseOptions, z, type Action, type ExecInRequest, type ExecOptions, type ExecResult, type Hooks, type Plugin, type RunContext } from '../../api/index.js';

export const PLUGIN_NAME = 'deadlines';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

/** The kinds and their defaults: generous, so a deadline stops a hang and never a slow but healthy step. */
export const DEADLINE_DEFAULTS = {
  /** `git fetch` of the remote: the only command that needs the network. */
  fetch: 5 * MINUTE,
  /** Every other git command (local: status, diff, merge --ff-only, revert, show, ...). */
  git: 10 * MINUTE,
  /** A docker CLI call of a runtime that names no other kind: ps, inspect, stop, start, rm, network rm, service ls. */
  docker: 5 * MINUTE,
  /** `compose up` (redeploy, recreate) and `docker stack deploy`: creating and starting a service's containers. */
  compose: 30 * MINUTE,
  /** `compose build` of a service's images, and `docker push` of them to a registry. */
  build: 60 * MINUTE,
  /** Each command a backup runs (a dump, tar and its compressor, the read-back check). */
  backup: 4 * HOUR,
  /** Each command a restore runs, and the check of every backup before it. */
  restore: 4 * HOUR,
  /** A lifecycle hook of a manifest or of the config (`hooks:`): a check, a notice, a cache flush. */
  hook: 30 * MINUTE,
  /** The ticket's own script `releases/TICKET-*.sh`: a data migration may legitimately take hours. */
  ticket: 4 * HOUR,
} as const;

export type DeadlineKind = keyof typeof DEADLINE_DEFAULTS;

const DURATION = /^(\d+)(ms|s|m|h)$/;
const SCALE = { ms: 1, s: 1000, m: MINUTE, h: HOUR } as const;

/** `90s`, `10m`, `4h`, `500ms` -> milliseconds. */
export function parseDeadline(text: string): number {
  const match = DURATION.exec(text);
  if (!match) throw new Error(`"${text}" is not a duration like 90s, 10m or 4h`);
  return Number(match[1]) * SCALE[match[2] as keyof typeof SCALE];
}

const duration = z.string()
  .refine((text) => DURATION.test(text), 'expected a duration like 90s, 10m or 4h')
  .refine((text) => !DURATION.test(text) || parseDeadline(text) > 0, 'must be longer than 0');

/** `defaultPlugins({ deadlines })`: any kind may be set; an unknown kind is an error naming it. */
export const deadlinesSchema = z.strictObject(
  Object.fromEntries(Object.keys(DEADLINE_DEFAULTS).map((kind) => [kind, duration.optional()])) as Record<DeadlineKind, z.ZodOptional<typeof duration>>,
);

export type DeadlineOptions = z.input<typeof deadlinesSchema>;

/** Answers `hooks.deadline` with the configured deadlines, the defaults for the kinds it does not set. */
export function deadlinesPlugin(rawOptions: DeadlineOptions = {}): Plugin {
  const options = parseOptions(PLUGIN_NAME, deadlinesSchema, rawOptions);
  const configured = new Map(Object.entries(options).filter(([, value]) => value !== undefined).map(([kind, value]) => [kind, parseDeadline(value!)]));
  return {
    name: PLUGIN_NAME,
    apply({ hooks }) {
      hooks.deadline.tap(PLUGIN_NAME, (kind) => configured.get(kind) ?? DEADLINE_DEFAULTS[kind as DeadlineKind]);
    },
  };
}

/** The exec options that bound a command of `kind` (the config in force, else the default). */
export function deadline(context: RunContext, kind: DeadlineKind): Pick<ExecOptions, 'deadlineMs' | 'deadlineName'> {
  const configured = context.hooks?.deadline?.call(kind, context);
  return { deadlineMs: configured ?? DEADLINE_DEFAULTS[kind], deadlineName: kind };
}

/**
 * The same run, but every command it runs that names no deadline of its own is bounded by
 * `kind`'s: what a backup strategy (ours or a platform's) runs, the runtime's `docker exec` for it
 * included, needs no deadline of its own.
 */
export function withDeadline(context: RunContext, kind: DeadlineKind): RunContext {
  // One scoped context per run and kind: plugins key what they remember by the context they get
  // (a stop remembered for its start), so two calls must see the same object.
  const perKind = scopedContexts.get(context) ?? new Map<DeadlineKind, RunContext>();
  scopedContexts.set(context, perKind);
  const known = perKind.get(kind);
  if (known) return known;
  const bound = deadline(context, kind);
  const scoped = Object.create(context) as RunContext;
  Object.defineProperty(scoped, 'exec', {
    value: (file: string, args: readonly string[], options: ExecOptions = {}) =>
      context.exec(file, args, options.deadlineMs === undefined ? { ...options, ...bound } : options),
  });
  perKind.set(kind, scoped);
  return scoped;
}

const scopedContexts = new WeakMap<RunContext, Map<DeadlineKind, RunContext>>();

/** What a runtime plugin that drives docker taps: the drift check, running in a part, and its actions. */
export interface DockerRuntimeTaps {
  plugin: string;
  runtime: string;
  plan: (service: string, context: RunContext, actions: Action[]) => Promise<void>;
  execIn: (request: ExecInRequest, context: RunContext) => Promise<ExecResult | undefined>;
  /** Whether this runtime carries out actions of `service` (the runtime its manifest names). */
  claims: (context: RunContext, service: string) => boolean | Promise<boolean>;
  handlers: Record<string, (context: RunContext, action: Action) => Promise<void>>;
  /** For a dry run: the command lines a handler would run (hooks.preview). */
  previews?: Record<string, (context: RunContext, action: Action) => Promise<string[]>>;
}

/**
 * Taps a docker-driven runtime: every docker command its drift check and its actions run without
 * a deadline of their own gets the `docker` kind's.
 */
export function tapDockerRuntime(hooks: Hooks, taps: DockerRuntimeTaps): void {
  hooks.runtime.for(taps.runtime).tap(taps.plugin, () => undefined);
  hooks.plan.tapPromise(taps.plugin, (service, context, actions) => taps.plan(service, withDeadline(context, 'docker'), actions));
  hooks.execIn.tapPromise(taps.plugin, taps.execIn);
  for (const [kind, handler] of Object.entries(taps.handlers)) {
    hooks.act.for(kind).tapPromise(taps.plugin, async (action, unbounded) => {
      const context = withDeadline(unbounded, 'docker');
      if (!(await taps.claims(context, action.service))) return undefined;
      await handler(context, action);
      return true;
    });
  }
  for (const [kind, preview] of Object.entries(taps.previews ?? {})) {
    hooks.preview.for(kind).tapPromise(taps.plugin, async (action, unbounded) => {
      const context = withDeadline(unbounded, 'docker');
      return (await taps.claims(context, action.service)) ? preview(context, action) : undefined;
    });
  }
}
