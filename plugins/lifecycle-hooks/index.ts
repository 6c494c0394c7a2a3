/**
 * Lifecycle hooks: the commands a manifest's `hooks:` (per service) and the config's (per repo,
 * `defaultPlugins({ hooks })`) name for a moment of a release: before and after a service's
 * deploy, backup and revert. The built-in plugins call `hooks.lifecycle` where the step happens,
 * under the release lock; this plugin runs what is configured for it.
 *
 * Semantics (docs/operations.md#lifecycle-hooks): a service's hook is read from the tree of its
 * moment (hookCommit: backups from the running code, deploys and pre-revert from the released
 * tree, post-revert from the reverted one); a non-zero exit of any hook fails its phase (a
 * pre-hook before its step starts, a post-hook after its step was done: the step is not undone);
 * a dry run lists them and runs none.
 */
import { isAbsolute, join, resolve } from 'node:path';
import { ReleaseError, parseOptions, z, type Plugin, type RunContext } from '../../api/index.js';
import { shellQuote, type LifecycleMoment } from '../../core/index.js';
import { deadline, withDeadline } from '../deadlines/index.js';
import { lifecycleHooksSchema, manifestPath, SERVICES_DIR, type LifecycleHook } from '../platform/manifest.js';
import { manifestHooks } from '../platform/service-at-head.js';
import { headSha } from '../../shared/git/git.js';

export const PLUGIN_NAME = 'lifecycle-hooks';

/** The repo's own hooks run on the host, in the repo: there is no one container of "the repo". */
const repoHooksSchema = lifecycleHooksSchema.superRefine((hooks, issues) => {
  for (const [event, hook] of Object.entries(hooks)) {
    if (hook && !Array.isArray(hook) && hook.in !== undefined) {
      issues.addIssue({ code: 'custom', path: [event, 'in'], message: 'a repo hook runs on the host; put a hook that runs in a container in that service\'s manifest' });
    }
  }
});

export type LifecycleHooksOptions = z.input<typeof lifecycleHooksSchema>;

/** One hook run as the audit log records it (`event=hook`), for `release show`. */
export interface HookRun {
  phase: string;
  hook: string;
  service: string | null;
  where: string;
  command: string;
  rc: number;
  duration_s: number;
}

const argvOf = (hook: LifecycleHook) => (Array.isArray(hook) ? hook : hook.run);
const partOf = (hook: LifecycleHook) => (Array.isArray(hook) ? undefined : hook.in);

/** How a resumed or repeated run is told to go on after a failed hook: the same verb, with the same choices. */
function rerunHint(context: RunContext): string {
  if (context.verb === 'release-revert') {
    return context.out.command('release-revert', [context.ticket, ...(context.codeOnly ? ['--code-only'] : []), ...(context.withoutPreRevertBackup ? ['--without-pre-revert-backup'] : [])]);
  }
  return context.out.command('release-run', [context.ticket, `--from=${context.phase}`]);
}

/**
 * The commit a service's hook for `event` is read from (undefined: the work tree, or a dry run's
 * preview): backups run on the code that runs now; a pre-revert on the released tree even once
 * git is reverted (a rerun), a post-revert on the reverted tree (in a dry run: BASE_SHA's).
 */
async function hookCommit(context: RunContext, event: LifecycleMoment['event']): Promise<string | undefined> {
  const state = context.state;
  // A real run's work tree is HEAD (the clone is clean); a dry run's preview would be the fetched commit.
  if (event === 'pre-backup' || event === 'post-backup') return context.dryRun ? await headSha(context) : undefined;
  if (event === 'pre-revert') return state?.mergeSha || undefined;
  if (event === 'post-revert' && context.dryRun) return state?.baseSha || undefined;
  return undefined;
}

async function runHook(context: RunContext, moment: LifecycleMoment, hook: LifecycleHook): Promise<void> {
  const { event, service } = moment;
  const argv = argvOf(hook);
  const part = partOf(hook);
  const shown = argv.map(shellQuote).join(' ');
  const whose = service ? `of ${service}` : 'of the repo';
  const where = part ? `in ${service}'s ${part}` : 'on the host';
  if (context.dryRun) {
    context.out.phase(context.phase, `would run the ${event} hook ${whose} ${where}: ${shown}`);
    context.out.events.emit(context.phase, 'hook-planned', { hook: event, service, where: part ?? 'host', command: shown });
    return;
  }
  context.out.phase(context.phase, `${event} hook ${whose} ${where}: ${shown}`);
  const state = context.state;
  const env = {
    RELEASE_TICKET: context.ticket,
    RELEASE_SERVICE: service ?? '',
    RELEASE_SERVICES: state?.services.join(' ') ?? '',
    RELEASE_BASE_SHA: state?.baseSha ?? '',
    RELEASE_MERGE_SHA: state?.mergeSha ?? '',
    RELEASE_PHASE: context.phase,
    RELEASE_HOOK: event,
    RELEASE_VERB: context.verb,
  };
  const started = Date.now();
  let rc: number;
  let output: string;
  if (part) {
    const result = await context.hooks.execIn.promise({ service: service!, target: part, argv: [...argv], env }, withDeadline(context, 'hook'));
    if (!result) {
      throw new ReleaseError('BAD_INPUT', `the ${event} hook of ${service} runs in ${part}, but no runtime runs ${service}`, {
        hint: `check ${manifestPath(service!)}: its runtime, or drop \`in: ${part}\` to run the hook on the host`, service,
      });
    }
    for (const line of result.output.split('\n').filter(Boolean)) context.out.detail(line);
    ({ exitCode: rc, output } = result);
  } else {
    const cwd = service ? join(context.repoDir, SERVICES_DIR, service) : context.repoDir;
    // `./check.sh` is the service folder's file, wherever the orchestrator runs from.
    const program = argv[0]!.includes('/') && !isAbsolute(argv[0]!) ? resolve(cwd, argv[0]!) : argv[0]!;
    const result = await context.exec(program, argv.slice(1), { cwd, env, onLine: (line) => context.out.detail(line), ...deadline(context, 'hook') });
    ({ exitCode: rc, output } = result);
    if (rc === 127 && result.stderr) output = result.stderr;
  }
  const seconds = Math.round((Date.now() - started) / 100) / 10;
  context.log.event(context.phase, 'hook', { hook: event, service, where: part ?? 'host', command: shown, rc, duration_s: seconds });
  if (rc === 0) {
    context.out.phase(context.phase, `${event} hook ${whose}: done in ${seconds}s`);
    return;
  }
  const pre = event.startsWith('pre-');
  throw new ReleaseError('PHASE_FAILED', `the ${event} hook ${whose} exited ${rc}: ${shown}`, {
    lines: output.split('\n').filter(Boolean).slice(-5),
    hint: `${pre ? `its step did not start` : `its step was done and is not undone`}; fix what the hook reports (or the hook), then ${rerunHint(context)}`,
    plugin: PLUGIN_NAME, service, reason: 'HOOK_FAILED',
  });
}

/** The hooks a ticket's audit log recorded (AuditLog.events()), in the order they ran. */
export function hookRuns(events: readonly Record<string, string>[]): HookRun[] {
  return events.filter((event) => event.event === 'hook').map((fields) => ({
    phase: fields.phase ?? '?', hook: fields.hook ?? '?', service: fields.service ?? null, where: fields.where ?? 'host',
    command: fields.command ?? '', rc: Number(fields.rc), duration_s: Number(fields.duration_s),
  }));
}

export function lifecycleHooksPlugin(rawOptions: LifecycleHooksOptions = {}): Plugin {
  const repoHooks = parseOptions(PLUGIN_NAME, repoHooksSchema, rawOptions);
  return {
    name: PLUGIN_NAME,
    apply({ hooks }) {
      hooks.lifecycle.tapPromise(PLUGIN_NAME, async (moment, context) => {
        // Undoing a revert puts the release back: no revert hook is run for it.
        if (context.undo && (moment.event === 'pre-revert' || moment.event === 'post-revert')) return;
        const hook = moment.service ? (await manifestHooks(context, moment.service, await hookCommit(context, moment.event)))?.[moment.event] : repoHooks[moment.event];
        if (hook) await runHook(context, moment, hook);
      });
    },
  };
}
