import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { availableParallelism } from 'node:os';
import { ReleaseError, parseOptions, writeFileAtomic, z, type Action, type Plugin, type RunContext } from '../../api/index.js';
import { ACTION_SOCKET_ENV, appliedKey, type ActionServer, codeOfExit, previewOf, serveActions, requireActionPlugins } from '../../core/index.js';
import { afterInWorkTree, dependencyWaves } from '../platform/waves.js';
import { manifestHooks } from '../platform/service-at-head.js';
import { classifyAll, type ClassifiedFile } from '../classify/classify-all.js';
import { diffView } from '../../shared/git/diff-view.js';
import { displayPath, headSha } from '../../shared/git/git.js';

/**
 * The command migrate.sh runs for each action (`release-step`): a path of this installation, not
 * an import, so that the plugin depends on no part of the application above it.
 */
const STEP_BIN = fileURLToPath(new URL('../../cli/bin/release-step.js', import.meta.url));
import { renderMigrateScript } from './script.js';

export const PLUGIN_NAME = 'migrate';

const optionsSchema = z.strictObject({
  /** Services of one wave migrated at once (`concurrency` in defaultPlugins()); default: this host's cores. */
  concurrency: z.number().int().min(1).max(64).optional(),
});

export type { ClassifiedFile } from '../classify/classify-all.js';
export { classifyAll };

/** The order of a service's actions: an image is built before the containers that run it are deployed. */
const ORDER = ['build', 'redeploy', 'recreate'];
const rank = (kind: string) => (ORDER.includes(kind) ? ORDER.indexOf(kind) : ORDER.length);

/**
 * One action per service and kind (their targets merged; no targets means all), ordered build ->
 * redeploy -> recreate -> the others within a service. Removing a service supersedes everything
 * else it was asked for; a build is always followed by a redeploy of what was built. A recreate
 * (a mounted file changed) beside a redeploy of the same service folds into that redeploy as the
 * parts it replaces: each container is replaced once per release, not redeployed then recreated.
 */
export function planActions(classified: ClassifiedFile[]): Action[] {
  const seen = new Map<string, Action>();
  for (const { classification } of classified) {
    for (const action of classification.actions) {
      const key = `${action.service}\0${action.kind}`;
      const first = seen.get(key);
      if (!first) seen.set(key, { ...action, targets: action.targets && [...action.targets] });
      else if (first.targets) first.targets = action.targets ? [...new Set([...first.targets, ...action.targets])].sort() : undefined;
    }
  }
  const actions = [...seen.values()];
  for (const build of actions.filter((a) => a.kind === 'build')) {
    if (!seen.has(`${build.service}\0redeploy`)) actions.push({ service: build.service, kind: 'redeploy', reason: 'run the image just built' });
  }
  for (const recreate of actions.filter((a) => a.kind === 'recreate')) {
    const redeploy = seen.get(`${recreate.service}\0redeploy`);
    if (!redeploy) continue;
    if (!recreate.targets) {
      // Every part is replaced anyway, with the new config: the recreate is the redeploy.
      recreate.reason = `${redeploy.reason}; ${recreate.reason}`;
      actions.splice(actions.indexOf(redeploy), 1);
      continue;
    }
    redeploy.recreate = [...new Set([...(redeploy.recreate ?? []), ...recreate.targets])].sort();
    redeploy.reason = `${redeploy.reason}; ${recreate.reason}`;
    actions.splice(actions.indexOf(recreate), 1);
  }
  const removed = new Set(actions.filter((a) => a.kind === 'remove').map((a) => a.service));
  const order = [...new Set(actions.map((a) => a.service))];
  return actions
    .filter((a) => a.kind === 'remove' || !removed.has(a.service))
    .sort((a, b) => order.indexOf(a.service) - order.indexOf(b.service) || rank(a.kind) - rank(b.kind));
}

/** `build web (app, worker)`: an action as the operator reads it. */
export const describeAction = (action: Action) => `${action.kind} ${action.service}${action.targets ? ` (${action.targets.join(', ')})` : ''}${action.recreate ? `, recreating ${action.recreate.join(', ')}` : ''}`;

/** The migrate.sh steps that run a service's own lifecycle hooks around its actions. */
const HOOK_KINDS = ['pre-deploy', 'post-deploy'] as const;
const isHookStep = (action: Action) => (HOOK_KINDS as readonly string[]).includes(action.kind);

/**
 * `actions` with, per service whose manifest (at the tree being released) has a `pre-deploy` or
 * `post-deploy` hook, that hook as a step before its first action and after its last: migrate.sh
 * shows and runs them in the service's own line of work, so a wave waits for them too.
 */
export async function withHookSteps(context: RunContext, actions: readonly Action[]): Promise<Action[]> {
  const result: Action[] = [];
  for (const service of [...new Set(actions.map((action) => action.service))]) {
    const own = actions.filter((action) => action.service === service);
    const removed = own.some((action) => action.kind === 'remove');
    const hooks = removed ? undefined : await manifestHooks(context, service);
    if (hooks?.['pre-deploy']) result.push({ service, kind: 'pre-deploy', reason: 'its pre-deploy hook (manifest hooks:)' });
    result.push(...own);
    if (hooks?.['post-deploy']) result.push({ service, kind: 'post-deploy', reason: 'its post-deploy hook (manifest hooks:)' });
  }
  return result;
}

/**
 * A pre-deploy hook guards the actions after it: when a resumed migrate still has one of them to
 * do, the hook runs again first (its earlier success is forgotten). A post-deploy hook that
 * succeeded is done, like an action.
 */
export function forgetGuardsOfPendingActions(state: { applied?: string[] }, actions: readonly Action[]): void {
  if (!state.applied) return;
  const pending = new Set(actions.filter((action) => !isHookStep(action) && !state.applied!.includes(appliedKey(action))).map((action) => action.service));
  state.applied = state.applied.filter((key) => !(key.endsWith(':pre-deploy') && pending.has(key.slice(0, -':pre-deploy'.length))));
}

/** `19900 service-file, 2 compose-file`: how many files of each kind. */
function kindsOf(classified: readonly ClassifiedFile[]): string {
  const counts = new Map<string, number>();
  for (const { classification } of classified) counts.set(classification.kind, (counts.get(classification.kind) ?? 0) + 1);
  return [...counts].sort((a, b) => b[1] - a[1]).map(([kind, count]) => `${count} ${kind}`).join(', ');
}

export const scriptPath = (context: RunContext) => join(context.workspaceDir, 'release', 'migrate.sh');

async function migrate(context: RunContext, concurrency: number): Promise<void> {
  const state = context.requireState();
  const classified = classifyAll(context, await diffView(context, state.baseSha, state.mergeSha));
  context.out.details(classified.map(({ file, classification }) => `${displayPath(file.path)}: ${classification.kind} (${classification.rule})`),
    (count) => `... and ${count} more: ${kindsOf(classified.slice(-count))} (all of them in the header of ${scriptPath(context)})`);
  for (const { file, classification } of classified) {
    context.out.events.emit(PLUGIN_NAME, 'classified', { path: file.path, status: file.status, kind: classification.kind, rule: classification.rule, service: classification.service });
  }
  const actions = await withHookSteps(context, planActions(classified));
  requireActionPlugins(context, actions);
  const waves = dependencyWaves([...new Set(actions.map((action) => action.service))], afterInWorkTree(context.repoDir));
  const script = renderMigrateScript({
    ticket: context.ticket,
    state,
    classified,
    actions,
    waves,
    concurrency,
    stepCommand: [process.execPath, STEP_BIN, '--repo', context.repoDir, '--ticket', context.ticket],
  });
  const path = scriptPath(context);
  if (context.dryRun) {
    context.out.phase(PLUGIN_NAME, `would write ${path} and run it with: all --no-backup`);
    for (const line of script.split('\n')) context.out.detail(line);
    if (actions.length > 0 && state.mergeSha && state.mergeSha !== (await headSha(context))) {
      // The printed commands name the work tree's files: pasted before the pull they would run on HEAD's.
      context.out.phase(PLUGIN_NAME, `the commands under each action run after the pull (git merge --ff-only ${state.mergeSha.slice(0, 12)}), on the files of that commit`);
    }
    if (actions.length > 0) await context.hooks.lifecycle.promise({ event: 'pre-deploy' }, context);
    // What a resumed migrate would skip, its guards of pending actions forgotten as a real run forgets them.
    const wouldSkip = { applied: state.applied && [...state.applied] };
    forgetGuardsOfPendingActions(wouldSkip, actions);
    for (const action of actions) {
      // A resumed migrate skips what the state records as applied: the preview says so too.
      const applied = wouldSkip.applied?.includes(appliedKey(action));
      context.out.phase(PLUGIN_NAME, applied
        ? `would skip ${describeAction(action)}: done before (APPLIED in the state file)`
        : `would ${describeAction(action)}: ${action.reason}`);
      if (applied) continue;
      context.out.events.emit(PLUGIN_NAME, 'action', { ...action });
      if (isHookStep(action)) {
        await context.hooks.lifecycle.promise({ event: action.kind as typeof HOOK_KINDS[number], service: action.service }, context);
        continue;
      }
      // What a real run would execute for it, to paste (the containers as they are now).
      for (const line of await previewOf(context, action)) context.out.detail(line);
    }
    if (actions.length > 0) await context.hooks.lifecycle.promise({ event: 'post-deploy' }, context);
    if (actions.length === 0) context.out.phase(PLUGIN_NAME, 'no changed file asks for an action: no service would be touched');
    return;
  }
  writeFileAtomic(path, script);
  context.out.phase(PLUGIN_NAME, `${path}: ${classified.length} file(s), ${actions.length} action(s)`);
  if (actions.length === 0) {
    context.out.phase(PLUGIN_NAME, `no changed file asks for an action: no service is touched`);
    return;
  }
  for (const action of actions) {
    context.out.phase(PLUGIN_NAME, `${describeAction(action)}: ${action.reason}`);
    context.out.events.emit(PLUGIN_NAME, 'action', { ...action });
  }
  waves.forEach((wave, index) => context.out.phase(PLUGIN_NAME, `wave ${index + 1} of ${waves.length}: ${wave.join(' ')}${wave.length > 1 ? ` (up to ${concurrency} at once)` : ''}`));
  forgetGuardsOfPendingActions(state, actions);
  const resumed = actions.filter((action) => state.applied?.includes(appliedKey(action)));
  if (resumed.length > 0) context.out.phase(PLUGIN_NAME, `resuming: ${resumed.map(describeAction).join(', ')} done before (APPLIED in the state file), not repeated`);
  // The repo's hooks (the config's) frame the whole of migrate.sh; each service's its own steps.
  await context.hooks.lifecycle.promise({ event: 'pre-deploy' }, context);
  // Each step of migrate.sh is carried out here, in this process, with the release's own config.
  const server = await serveActions(context);
  let result;
  try {
    result = await context.exec('bash', [path, 'all', '--no-backup'], {
      env: { RELEASE_ORCHESTRATOR: '1', [ACTION_SOCKET_ENV]: server.socket },
      onLine: (line) => context.out.detail(line),
    });
  } finally {
    await server.close();
  }
  // An action that failed fails migrate, whatever exit status the script reported for it.
  if (server.failure) throw haltedBy(server, actions, state.applied ?? []);
  if (result.exitCode !== 0) {
    throw new ReleaseError(codeOfExit(result.exitCode), `migrate.sh exited ${result.exitCode}`, {
      lines: result.output.split('\n').slice(-5),
      hint: `read ${path}; resume with --from=migrate once the cause is fixed`,
    });
  }
  await context.hooks.lifecycle.promise({ event: 'post-deploy' }, context);
  // Every action is done: the state is the runbook's again, and a later --from=migrate applies all.
  if (state.applied) {
    delete state.applied;
    context.saveState();
  }
}

/**
 * The first failure, naming its service, with what else failed, what was applied (recorded in the
 * state, not repeated by --from=migrate) and what never started.
 */
function haltedBy(server: ActionServer, actions: readonly Action[], applied: readonly string[]): ReleaseError {
  const [first, ...others] = server.failures;
  const services = [...new Set(actions.map((action) => action.service))];
  const done = services.filter((service) => actions.filter((a) => a.service === service).every((a) => applied.includes(appliedKey(a))));
  const failed = [...new Set(server.failures.map((failure) => failure.service).filter(Boolean))];
  const lines = [
    ...first!.lines,
    ...others.map((other) => `also failed: ${other.message}`),
    `failed: ${failed.join(' ') || 'none'}; applied: ${done.join(' ') || 'none'}; not applied: ${services.filter((s) => !done.includes(s)).join(' ') || 'none'}`,
    ...(server.notStarted.length > 0 ? [`not started after the failure: ${server.notStarted.join(', ')}`] : []),
  ];
  return new ReleaseError(first!.code, first!.message, {
    lines, plugin: first!.plugin, hook: first!.hook, service: first!.service, reason: first!.reason,
    hint: `${first!.hint ? `${first!.hint}; ` : ''}--from=migrate applies only what is not applied yet`,
  });
}

export function migratePlugin(rawOptions: z.input<typeof optionsSchema> = {}): Plugin {
  const options = parseOptions(PLUGIN_NAME, optionsSchema, rawOptions);
  const concurrency = options.concurrency ?? Math.min(64, availableParallelism());
  return {
    name: PLUGIN_NAME,
    apply({ hooks }) {
      hooks.phase.for('migrate').tapPromise(PLUGIN_NAME, (context) => migrate(context, concurrency));
      for (const kind of HOOK_KINDS) {
        hooks.act.for(kind).tapPromise(PLUGIN_NAME, async (action, context) => {
          await context.hooks.lifecycle.promise({ event: kind, service: action.service }, context);
          return true;
        });
      }
    },
  };
}
