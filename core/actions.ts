import type { Action } from './hooks.js';
import type { RunContext } from './context.js';
import { ReleaseError } from './errors.js';
import { tappedKeys } from './tapped.js';

/** Every action kind some plugin carries out, with those plugins: `redeploy (runtime-a, runtime-b)`. */
export function describeActionPlugins(context: RunContext): string {
  const kinds = [...tappedKeys(context.hooks.act)].map(([kind, plugins]) => `${kind} (${plugins.join(', ')})`);
  return kinds.length > 0 ? kinds.join(', ') : 'none';
}

/** The actions no plugin taps at all: refused before any of them runs. */
export function requireActionPlugins(context: RunContext, actions: readonly Action[]): void {
  const missing = actions.filter((action) => !context.hooks.act.get(action.kind)?.isUsed());
  if (missing.length === 0) return;
  throw new ReleaseError('DRIFT', `${missing.length} action(s) that no plugin carries out; no service was touched`, {
    lines: [...missing.map((action) => `${action.kind} ${action.service}: ${action.reason}`), `plugins that carry out actions: ${describeActionPlugins(context)}`],
    hint: 'register a plugin for that action in release.config.ts, or change the rule that asks for it',
    reason: 'NO_ACTION_PLUGIN',
  });
}

/** Carries out one action through `hooks.act`; an action no plugin takes is an error, never a silent no-op. */
export async function carryOut(context: RunContext, action: Action): Promise<void> {
  const hook = context.hooks.act.get(action.kind);
  if (hook?.isUsed() && (await hook.promise(action, context))) return;
  const plugins = hook?.isUsed() ? hook.taps.map((tap) => tap.name).join(', ') : 'none';
  throw new ReleaseError('DRIFT', `no plugin carried out ${action.kind} for service ${action.service} (plugins that take ${action.kind}: ${plugins})`, {
    hint: `check the service's runtime: in its manifest, or register a plugin for it in release.config.ts`,
    reason: 'NO_ACTION_PLUGIN',
  });
}

/**
 * For a dry run: the command lines a real run would execute for one action (hooks.preview), or a
 * `#` line saying why they cannot be shown (a runtime that cannot be asked is no failure of the preview).
 */
export async function previewOf(context: RunContext, action: Action): Promise<string[]> {
  const hook = context.hooks.preview.get(action.kind);
  if (!hook?.isUsed()) return [];
  try {
    return (await hook.promise(action, context)) ?? [];
  } catch (error) {
    return [`# the commands cannot be shown: ${error instanceof Error ? error.message.split('\n')[0] : String(error)}`];
  }
}
